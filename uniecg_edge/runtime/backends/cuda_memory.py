"""Device memory for the TensorRT backend through the CUDA runtime library (ctypes; no cuda-python, no torch).

Only what running engines needs: allocate, free, copy host <-> device on one stream, synchronise. Buffers grow
(never shrink) so a steady decode loop allocates nothing. ``libcudart`` comes with JetPack and with NVIDIA's
tensorrt wheels (nvidia-cuda-runtime).
"""

from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass

import numpy as np

from ...errors import BackendUnavailableError

LIBRARY_NAMES = ("libcudart.so", "libcudart.so.13", "libcudart.so.12", "libcudart.so.11.0")
HOST_TO_DEVICE = 1
DEVICE_TO_HOST = 2
MIN_BYTES = 256  # never a zero-byte allocation: TensorRT wants a valid address even for empty tensors


class CudaRuntime:
    """A handful of ``libcudart`` calls; every error becomes one ``BackendUnavailableError`` line."""

    def __init__(self, library: ctypes.CDLL | None = None) -> None:
        self.lib = library or _load_cudart()
        self.lib.cudaGetErrorString.restype = ctypes.c_char_p
        stream = ctypes.c_void_p()
        self._check(self.lib.cudaStreamCreate(ctypes.byref(stream)), "cudaStreamCreate")
        self.stream = stream.value or 0

    def _check(self, code: int, what: str) -> None:
        if code != 0:
            message = self.lib.cudaGetErrorString(code)
            text = message.decode() if isinstance(message, bytes) else str(code)
            raise BackendUnavailableError(f"CUDA {what} failed: {text} (error {code})")

    def malloc(self, nbytes: int) -> int:
        pointer = ctypes.c_void_p()
        self._check(self.lib.cudaMalloc(ctypes.byref(pointer), ctypes.c_size_t(max(nbytes, MIN_BYTES))), "cudaMalloc")
        return int(pointer.value or 0)

    def free(self, pointer: int) -> None:
        self._check(self.lib.cudaFree(ctypes.c_void_p(pointer)), "cudaFree")

    def to_device(self, pointer: int, array: np.ndarray) -> None:
        self._check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(pointer), ctypes.c_void_p(array.ctypes.data),
                                             ctypes.c_size_t(array.nbytes), HOST_TO_DEVICE,
                                             ctypes.c_void_p(self.stream)), "cudaMemcpyAsync (host to device)")

    def to_host(self, array: np.ndarray, pointer: int) -> None:
        self._check(self.lib.cudaMemcpyAsync(ctypes.c_void_p(array.ctypes.data), ctypes.c_void_p(pointer),
                                             ctypes.c_size_t(array.nbytes), DEVICE_TO_HOST,
                                             ctypes.c_void_p(self.stream)), "cudaMemcpyAsync (device to host)")

    def synchronize(self) -> None:
        self._check(self.lib.cudaStreamSynchronize(ctypes.c_void_p(self.stream)), "cudaStreamSynchronize")


def _load_cudart() -> ctypes.CDLL:
    names = list(LIBRARY_NAMES)
    found = ctypes.util.find_library("cudart")
    if found:
        names.insert(0, found)
    for name in names:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise BackendUnavailableError("the CUDA runtime library (libcudart.so) cannot be loaded: the tensorrt backend "
                                  "needs CUDA (JetPack, or NVIDIA's CUDA runtime)")


@dataclass
class DeviceBuffer:
    """A device allocation that grows to fit (capacity in bytes)."""

    cuda: CudaRuntime
    pointer: int = 0
    capacity: int = 0

    def ensure(self, nbytes: int) -> int:
        if not self.pointer or nbytes > self.capacity:  # an empty tensor still needs a valid address
            if self.pointer:
                self.cuda.free(self.pointer)
            self.capacity = max(nbytes, 2 * self.capacity, MIN_BYTES)
            self.pointer = self.cuda.malloc(self.capacity)
        return self.pointer

    def release(self) -> None:
        if self.pointer:
            self.cuda.free(self.pointer)
        self.pointer, self.capacity = 0, 0
