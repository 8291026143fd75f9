"""The mutants of issue 16 that need a fault (the enumerator's failover path) and the
aligned-timeout mutant: each shrunk counterexample that `onceflow mutants --seed 0` found
fails with its mutant, passes without it, and (where it has one) passes without its
fault; the generator's aligned-timeout draws make checkpoints switch to unaligned."""

from __future__ import annotations

import pytest
from attrs import evolve

import onceflow
from onceflow import Violation
from onceflow.mutants import MUTANTS
from onceflow.strategies import scenario_from_seed
from onceflow.token import decode

FOUND = [
    ("abort-drops-latest-completed",  # onceflow mutants --seed 2 (aborts16)
     "of1.eNqNU9tuozAQ_Rc_k4q0SrXKr0QRmtgD8WJsa2wnRRH_3hlIU7LVSuXJl5kz52JuSp9R9zFYn5Pa35QpBCeHTcqBUO1bcAkrxbdIF3BqX7_sKjXAR6OD14UIfVb7LR8Fw-UKnO08GlUpwgxWlnKb7YChcOWufql5GxwuY1qwDk3zRKKeKtVCcbI-3FYE-apSBh2MwoPX2Lao-Vi5kJBn9tbzPOVDtu3I-wFTgk54tdYze54M1KF0ZHBuPNRHNR25rmSYRx8UnALljaEQ08ZBxpQ3OgzRYWYpR5GVGCOLVZAzDlHa3la0dsw-wQW_1By4KbEGUxzedyiuMP1kfS9UrqGJZ5gVsFHWd4J-KiyOGkIdyKTZRX0G79E1GiJom8f58K9lGnQ3RBh7PfPYClfp5aRS_jqJunmuKdEFMI0ENGNMkk4MLnSjsJCkIxCbhc6mgSe-_qnUBSlbjUs-aBaHA12BzHcKKRTSoum5f9kPswHFrgqn6oHFZpy_geao_sV5_Ymz1P0XhjiCX_FZCus10k9xEt0vpEnZdBRTP3zz-Avea_kkMHYy2eDn5mugXsIQ33scl8wf-dfrh9Pj9Z54is7KM9tO0ycKukB8"),
    ("enumerator-restores-latest-snapshot",
     "of1.eNqNUttu2zAM_Rc-O4HTosOQXwkCgZXpWLMsGZSU1Aj87yPldGv2MFRPJMXLOYe8gx3IjnN0ISc43qErjO-eTMqRCY6ZCzUgn8RX9HBs928NTPhhbAy2MFPIcDxIKHaSDejdJVAHDTBldGrqb3YTxSKZb-2-FTd62qb06Dx15glDuzbQY_Fqn-6AOkCrRhekG9gYuXMBBZ-xjGmA9SzzS8ZafQIKZZL28r9jqjTSzmMWc5cCzmmIGc4KMGXkrJwxZ5pmrX5toCOPSyUqOBJe6RPXA0u7P2gWCzs49ugTbb1kjpmR0XvyLk2Vt0TnR5KCTMKzK16EOqlHqo4QSy6MQizfopkHTARVMBcuiu299D2xYbJCO9WudsAQyBuLM1qXlxr85YQEV3gNKN1gl4e31crGUv6MzNY855TZR-yMLkojugPBHn28LIpCN_5M7uVnA1fi7Cxt2lB30QvoI9-Q9QIe-0qxsFVO_4qj_lQFKO5L4tr8p5cq9Y1OmraelcNHMH-O70erT09JgCcXQy2-RR6Vu9Icadkk_ir33z2NdKviiDl7pzdxWNffDBAXZQ"),
    ("enumerator-not-reset-without-checkpoint",
     "of1.eNptUu2O4jAMfJf8Lqh0tewdr4JQZFK35JomVeLQRajvvna6y8Hp-qv-msx4fFfmgmaYgvWU1OGu2hzh7FAnChHVgWLGSnER4xWcOtTb90qN8KlN8CbHiJ7UYcep0HK3AtIOIZHmKqpKRSSwHtvSQ3bEkKX_d72tOQ4O18c6sA5b_UKlXirVQXbyf7w_0eRSpVp0cFOHfQHCrkPDeSU4eo6W5O3Ben5XiRDoJZE8TOkSpBH8jRMEsUcJk_XDsTmp5cRKMkEhcFTo88gMGWDjA20iJqTNbOnCKjZPhE4iNDEayQaBCMdJEN7_8tyKnARX_JF35KHEGG12-B2h7InlCBsmRXPQ0wWSUOfVWd8L-jmz2KgjmhDbVPZqLuA9Om1gAmPpVpJ_LNOIYhgjOiD0hgvN9kO4yiw7mKjU3zg1Gf1o2m2b-uVrKpUnF6DVYmGZWcS-KbjQ34SVXMQEEZxDZ9PIGM2vSl0xkjW4GohtLxfShThDbJ_8CTmWW3mdX-OxLCTbp8alemBFPIOD9dJ-0GR3_2C9_QdL2paTqPj0-nGY-yJXNsbUkw2-EJlDHES9CB3wti792YDVueZjX-85GHD-XnuanBWvd8vyBbgtIH0"),
    ("splits-back-only-failed-reader",
     "of1.eNqNUtFu2zAM_Bc-O4WzotuQXwkCg5FoW7MsGZSU1Aj87yNtt2seBtRPkkjeHe_8ANOTGaboQk5weoAtjFdPTcqRCU4t-kQVSJX4hh5O9ctbBSO-NyYGU5gpZDgd5SlaaQf0rgtkoQKmjE6PWs1upFik861-qeUaPW00LTpPtnkSUS8VtFi8ns8PwKysx18VDC4IHBjG1AtDRu5IikJli6H6XF9guYiUknEFOkOavMvpcEUzHGLw82HjOzChJYaLykyCk3V1zJnGSQdfK7DkcV7XFTUJb_Sh7ixDSfTa4mm_kW4payUXBpGT77GZekwE6-IudIp-LW1L3DCZyDatrpgeQyDfGJzQuDyvj3-cyGBlFkSPmYJZdRxVq86K8yl_vEymee4pk49oGzV8xVjU7Sn62M2qQpObkNF78i6NwvjjdwU34uwMbX6T7TTJNvIdWZPcbU-xsNGdnue3-7gaUNyXxqX6xOq3wHagLa5vAO25_h9pNfwbgrRtuagV76H5_Bd_1vqpzbJ_cjGsw_fIg1qobg00b0l9Te1f3APd95y2_0zKy_IXGxgYGA"),
    ("stale-events-to-new-reader",
     "of1.eNptU9GO4jAM_Jc8rgqC7i7H9VcQqkzillxDUjkJXYT672s3KwSr61PsOOOZsXtX-ox6GIP1KarmrkwmODlsYwqEqkmUsVJ8iXQFp5rd-rNSF_hqdfA6E6FPqqk5FQxXK3C292hUpQgTWDk220ole8GQpXKzWW84Dg5Lmw6sQ9O-kNjOleogOzkf7k8EVcNvDTq4MZEFCLsONeeV4LQT2YTce7Ce-yqRAL0koocxnoMURrhiAWMaQD1K8k3NR9aQEywEDvwUHK7wyvLiKoWVx2lFCAZJHUUb31MSuyAlvIzyaPegtmVqLOHRqcgAoS-cDbExqunARSxY7HQ7AoFz6Gy8qMZn5yrhP5YJCLvIPpjs2OWDRCjW1vV-95cD6wdWkabQjmeIopgdt74XhqfMHlFLqAOZuIxDn8F7dK2GEbRNtyX5z7IU4uP6Y_Py8Z2DhF5zXS0CChRvQCyS3jk16vZRtFnvK5VHF8C0MnnJ_PmFOcsSjMGF_iYkZaNeHNjWjHFFSlZj8Q9NLxvWBZqAzNOUQyYtkl_ev5f4sqxMtk-Fc_XAOhFT1BDTE5pY-Qur_g-WlM1HUfHl28d67xZx4hFTjzb4xdkp0CBmiNABb2UGz_Mow_z43O9ZdBxw-tmUODpbfoj5G6iOMqY"),
    ("timeout-misses-inflight",
     "of1.eNqNUttugzAM_Zc8s4lV6jT1V6YKucGUjJBETtIOVfz77EBv28t4SsA-Vy5K96iH4I1LUe0uCqw5OmybZEb0Oald_fpWqTYTHCw2MXlCtevARqwU7yCdwMrQtlIjfDfaO52J0PEm742-5XGV3QqrKkWYwMhRvt9YtvVrzVdvcSHqwFhW8SSunivVQbZy_twzeE5QPnxecV5GEyPGF-M65uuT2gtfTECpeEsJxyAbG7aEFqainGEjnPBKI9CRidtscb2hyGV90biB7aSzb0IPEVVxYNxR0A-565AaQu2pjcWe7sE5tI2GANqkqbz8MiyDhJkRLSR0elpjXnY5xJjWTCno5nkmB-th6adgzBJb8NYfJ1EhJQQgsBatiSMzbj4qdUJKRqO4uyhsj1JK5-kMJJUMxrE_FX0mLZ6e95f7WALI5mFwrm5YB2JNGlj2DW2E8Btq8xeKp-pHIE61f1Akef9Dj4zNe0ni293_3PdaHkmZ7UfjXVk-exokQQlrwGkp6rG0e9sDnteaYrBG_o23ef4BnqAPHg"),
]


def verdict(scenario: onceflow.Scenario) -> str:
    try:
        onceflow.check(onceflow.run(scenario))
    except Violation as v:
        return v.finding.anomaly
    return "ok"


@pytest.mark.parametrize(("name", "token"), FOUND, ids=[n for n, _ in FOUND])
def test_the_counterexample_needs_its_mutant_and_its_fault(name: str, token: str) -> None:
    scenario = decode(token)
    assert scenario.mutants == (name,) and name in MUTANTS
    assert verdict(scenario) in MUTANTS[name].symptom
    assert verdict(evolve(scenario, mutants=())) == "ok"  # the control: no false alarm
    if name != "timeout-misses-inflight":  # found through a restore of the switched checkpoint
        assert scenario.faults, f"{name} was found without a fault"
        assert verdict(evolve(scenario, faults=())) == "ok", f"{name} needs no fault"


def test_drawn_aligned_timeouts_make_checkpoints_switch_to_unaligned() -> None:
    with_timeout = switched = 0
    for seed in range(400):
        s = scenario_from_seed(seed)
        if s.checkpoints.aligned_timeout is None:
            continue
        with_timeout += 1
        events = onceflow.run(s).trace.events
        switched += any(e[1] == "barrier_overtaken" for e in events)
    assert with_timeout >= 40
    assert switched >= with_timeout // 2, (switched, with_timeout)
