"""The UniECG reference model in PyTorch: ECG encoder, projector, causal LM, generation head, UNet, VAE."""
