"""Scenarios that once raised a false alarm or exposed a model bug, replayed by token."""

from __future__ import annotations

import pytest

import onceflow

#: (what went wrong, token)
REGRESSIONS = [
    ("unaligned: an end-of-input taken after the first barrier was not kept as channel "
     "state, so the consistent-cut check saw unflushed windows in an ended snapshot",
     "of1.eNp1UttuwjAM_Rc_V6gwMSZ-ZUKVSV3IGpLISSgI9d9nlxV20frSXHwuPvENzJFMH4P1OcH2Bm1h3DtqUg5MsO3QJapAbonP6GBbL9YVnPDSmOBNYSafYbuUo9BKORSPzh48tVABU0arS73P9kShSO26XtRjBR0Wp4rvO8GWjH7eMKWMnNUL5kynqBerClpyeJ30BZ3wTLNnBSVSmRdZWN-LjTyEJh4xEUzK1h-Ub1-6jrhhMoFbQb5V0j16T64xGNHYfJ28flgRZtWqK3CYyZtJeanuFCvNpzyfRNP8rCnRBWwb7XjiEL85xODC4aouNLyIjM6Rs-kkiisxcibO1pD2cwNqDxpmF3hA1ih766U_SKGw0Z5-4Ff3vazEbrHfCsfqwSVhHJ9Eg_zC8Jto-SBazUT3wvo7019Xmvm_VE9PWjbuNI2Lbx7z8Frrp0lLBMkGP4GHwL2mqIH1dL2PwOPhNpv5yQWWehq-5jJFZ6dxGcdPMSnvTw"),
]


@pytest.mark.parametrize("token", [t for _, t in REGRESSIONS],
                         ids=[w.split(":")[0] for w, _ in REGRESSIONS])
def test_regression(token: str) -> None:
    onceflow.check(onceflow.run(onceflow.decode_token(token)))
