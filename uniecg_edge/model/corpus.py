"""A deterministic corpus of GEM-style ECG report sentences, used to train the default model's tokenizer.

It covers the words and number formats reports use (rhythms, rates, intervals, axis, lead names, findings).
The trained model of a later release writes its reports from ground truth with the same vocabulary.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

RHYTHMS = ("sinus rhythm", "sinus tachycardia", "sinus bradycardia", "atrial fibrillation", "atrial flutter",
           "sinus arrhythmia", "junctional rhythm")
FINDINGS = ("first-degree AV block", "right bundle branch block", "left bundle branch block",
            "left axis deviation", "right axis deviation", "premature ventricular contractions",
            "premature atrial contractions", "ST elevation", "ST depression", "T wave inversion",
            "prolonged QT interval", "low QRS voltage", "left ventricular hypertrophy")
LEADS = ("I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6")


def report_sentences(n: int = 2000, seed: int = 0) -> Iterator[str]:
    rng = random.Random(seed)
    for _ in range(n):
        rhythm = rng.choice(RHYTHMS)
        rate = rng.randint(35, 180)
        pr, qrs, qt = rng.randint(100, 320), rng.randint(60, 180), rng.randint(280, 520)
        qtc = rng.randint(340, 540)
        axis = rng.randint(-90, 180)
        lead_a, lead_b = rng.sample(LEADS, 2)
        finding = rng.choice(FINDINGS)
        yield rng.choice((
            f"The ECG shows {rhythm} with a ventricular rate of {rate} bpm.",
            f"RR intervals are {'regular' if 'fibrillation' not in rhythm else 'irregularly irregular'}, "
            f"and P waves are {'absent' if 'fibrillation' in rhythm else 'present before each QRS complex'}.",
            f"The PR interval is {pr} ms, the QRS duration is {qrs} ms, the QT interval is {qt} ms "
            f"and the QTc is {qtc} ms.",
            f"The frontal QRS axis is {axis} degrees.",
            f"In leads {lead_a} and {lead_b} there is {finding}.",
            f"Impression: {rhythm}, {finding}.",
            f"Heart rate {rate} bpm; {rhythm}; axis {axis} degrees.",
            "No acute ST changes. Normal R wave progression across V1 to V6.",
            f"Lead {lead_a}: upright P wave, narrow QRS complex, normal T wave.",
        ))
