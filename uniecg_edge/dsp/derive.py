"""Lead derivation for records and stream chunks (memoryless, so a chunk is derived like a block).

III, aVR, aVL and aVF follow exactly from I and II (Einthoven and Goldberger, ``leads.derive_limb_leads``); an
8-channel front end (I, II, V1-V6) thus gives the 12 standard leads (``leads.select_standard_12``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..leads import (
    LIMB_LEADS_DERIVED,
    STANDARD_LEADS,
    canonical_name,
    derive_limb_leads,
    find_lead,
    select_standard_12,
)

__all__ = ["complete_limb_leads", "derive_standard_12"]


def complete_limb_leads(signal: np.ndarray, leads: Sequence[str], usable: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, tuple[str, ...], tuple[str, ...]]:
    """The signal with III, aVR, aVL and aVF appended where missing and I and II are present.

    Leads not in ``usable`` (when given) become NaN, and nothing is derived from them.
    Returns (signal, lead names, names of the derived leads).
    """
    x = np.array(signal, dtype=np.float64)
    names = tuple(canonical_name(n) for n in leads)
    if usable is not None:
        keep = {canonical_name(n).lower() for n in usable}
        for i, name in enumerate(names):
            if name.lower() not in keep:
                x[i] = np.nan
    i_idx, ii_idx = find_lead(names, "I"), find_lead(names, "II")
    if i_idx is None or ii_idx is None or not (np.isfinite(x[i_idx]).any() and np.isfinite(x[ii_idx]).any()):
        return x, names, ()
    derived = derive_limb_leads(x[i_idx], x[ii_idx])
    extra = [lead for lead in LIMB_LEADS_DERIVED if find_lead(names, lead) is None]
    if not extra:
        return x, names, ()
    rows = np.stack([derived[lead] for lead in extra])
    return np.concatenate([x, rows]), names + tuple(extra), tuple(extra)


def derive_standard_12(signal: np.ndarray, leads: Sequence[str]) -> tuple[np.ndarray, tuple[str, ...]]:
    """The 12 standard leads in standard order from a chunk or record that has at least I, II and V1-V6.

    Raises ``LeadError`` naming what is missing. Returns (12 x n array, names of the derived leads).
    """
    out, derived = select_standard_12(np.asarray(signal), list(leads))
    assert len(out) == len(STANDARD_LEADS)
    return out, derived
