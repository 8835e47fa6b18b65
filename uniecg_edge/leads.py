"""Lead names and the exact relations between the limb leads (Einthoven and Goldberger)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import LeadError

STANDARD_LEADS: tuple[str, ...] = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")
LIMB_LEADS_DERIVED: tuple[str, ...] = ("III", "aVR", "aVL", "aVF")
# Frank leads that appear beside the 12 standard ones in PTB-style 15-lead records.
FRANK_LEADS: tuple[str, ...] = ("VX", "VY", "VZ")
MAX_LEADS = 15

_CANONICAL = {name.lower(): name for name in STANDARD_LEADS + FRANK_LEADS}


def canonical_name(name: str) -> str:
    """The standard spelling of a lead name, matched case-insensitively (``AVR`` → ``aVR``); others unchanged."""
    stripped = name.strip()
    return _CANONICAL.get(stripped.lower(), stripped)


def find_lead(names: Sequence[str], wanted: str) -> int | None:
    """Index of ``wanted`` in ``names``, compared case-insensitively, or ``None``."""
    key = wanted.strip().lower()
    for i, name in enumerate(names):
        if name.strip().lower() == key:
            return i
    return None


def derive_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> dict[str, np.ndarray]:
    """III, aVR, aVL and aVF from I and II; exact, so deriving them invents nothing."""
    return {
        "III": lead_ii - lead_i,
        "aVR": -(lead_i + lead_ii) / 2.0,
        "aVL": lead_i - lead_ii / 2.0,
        "aVF": lead_ii - lead_i / 2.0,
    }


def select_standard_12(signal: np.ndarray, names: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 12 standard leads in standard order from a (leads, samples) array, selected by name.

    III, aVR, aVL and aVF are derived from I and II when the record lacks them (an exact relation).
    Returns the (12, samples) array and the names of the leads that were derived.
    Raises ``LeadError`` naming the leads that are missing and cannot be derived.
    """
    rows: dict[str, np.ndarray] = {}
    for lead in STANDARD_LEADS:
        idx = find_lead(names, lead)
        if idx is not None:
            rows[lead] = signal[idx]
    derived: list[str] = []
    if "I" in rows and "II" in rows:
        for lead, values in derive_limb_leads(rows["I"], rows["II"]).items():
            if lead not in rows:
                rows[lead] = values
                derived.append(lead)
    missing = [lead for lead in STANDARD_LEADS if lead not in rows]
    if missing:
        have = ", ".join(names) or "none"
        raise LeadError(
            f"the model needs the 12 standard leads; missing {', '.join(missing)} (record has: {have})"
        )
    return np.stack([rows[lead] for lead in STANDARD_LEADS]), tuple(derived)
