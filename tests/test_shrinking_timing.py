"""Counterexamples whose failure needs its timing shrink to a readable size.

The bug zoo's session-3 run (BENCHMARKS.md) left three counterexamples of 31-97 records
(and session 4's generator change a fourth, of 65, with no savepoint or fault to move):
the greedy pass found no smaller record count that kept the failure, because each needs
a checkpoint, savepoint or failover to land while records still flow, and fewer records
end the run first.  Their tokens (as the greedy pass of 7686877 left them) must now
shrink to at most `READABLE_RECORDS` records within a fixed number of tries, still
failing the same way, still needing their mutant.  No assertion is on wall time.
"""

from __future__ import annotations

import pytest
from attrs import evolve

from onceflow.shrinking import READABLE_RECORDS, _candidates, shrink, violation_of
from onceflow.token import decode

#: name (mutant, seed of the zoo run) -> (token, records it kept, what it violates)
STUCK = {
    "abort-discards_1": (
        "of1.eNqdUl2P2jAQ_C9-dlESwvXIX0HIWpwN58bYlj_g0Cn_vbsJcNCqL01ebO94PDuzX0J_oB6D"
        "Ny4n0X2JvkQ4WFQp-4iiy7GgFFTEeAYruna1keIEn0p7p0uM6LLoajryPaEFZGURUlZURSFFxAzG"
        "YS-6tRTZnNAXwjdttapo7y0ujw1gLPbqRUo1STFAsbze7emFkmEu7AQcfMw_epM0xD6JPb-TMsTM"
        "DUDOeAoMbKTo0cJVdO8rZktwxjv7joGi267qd0JFEim6AWzChYt6VwEiWIvWpJPoXLGWGLIPN9wk"
        "F4ZmbuW_GEh3opb7Ysm6XSP5r2Ul17LmErJtzWbbUh_JuJHszRevwgckVEfrD5THbKpxR278UIYB"
        "o4qoPbvS1W-SwgXn0CoNAbTJ1zmrX4YsiuQwK7eQ0Wku8G65TOGmzHUCx6DVE4ZOSrAeesVpzhwT"
        "Jxm89ccry-DheGm8bsjiM8ZsNC7OY3_kYRl8vFCA1MRoHPUqki9xHpuX--2ypxUJLOYJyBncuA6R"
        "NGmavG-2gWSrE4Q_-dYPvubOd4fWz5R_y-MQ_kn2LY5h055t-XTqMfRvFX9sMnmRjHdzFhcfR7aT"
        "nRvxmubDR4Tbn_c5aJtNRZU04uUWXArW8CTX0_QbU08_sw",
        97, "no_loss"),
    "drained-stop-resumes_4": (
        "of1.eNqFUtFu2zAM_Bc9u4GdruvgXwkCgZHpVLMsCZSUNCj87yPlJEs2DPOTLB2Pd0d-KfOBZorB"
        "-pxU_6WGQnBwqFMOhKofwSVsFL8incCpvt28NWqGT22CN4UIfVZ9x1dhYLgCZ48eB9UowgxWjvKa"
        "7YyhMPKt3bT8GxyubUawDgf9JKJdGjVCcXLe7Zm6ZKgPOzVQ5XxhdfGFMJUZk9pLs5SBshiAnHGO"
        "An9v1IAOLlU0cyY44a3HToAM2by_Niur6jMVXKnYuo5A4Bw6m2bV--IcE3DXFbY0a311cy2_RvXf"
        "-opbWHRi10NxuLpMKFkxXbJ-4iTzOej4AQlVjc_6o7g7lHFE0oQm0MA-fjQ8QPAenTYQwdh8qYH_"
        "tBwDXQU6yOhNzaETgVLL80vVwJZvotEPGOYs0QUYtIytciwysxhcOF5Ehcz_yV-35aITUrYG13Rx"
        "OMo-jIHOQLIPk_XsT6VQyIinp_rt-j_XAIp9AErSV64DsSYDLPvONrJsPUP8k6-7821vfDdo-0j5"
        "tzwJ_59kv8UJbNlLLJ9e37f7eyufRM5ZJBt8LT4HmiROSW7CS6qX9wl-6x5nP-H5OrQUnZVN7Zbl"
        "F1NXN90",
        41, "no_loss"),
    "splits-back-include-checkpointed_3": (
        "of1.eNqNUttu2zAM_Rc9O4WdNsXgXwkCgZHoRLMsCZSUNCj87yXtLkuGDZifbOnw8Fz8qcwZzZii"
        "CyWr_lPZSnD0qHOJhKofwGdsFN8iXcCr_v2lbdQEH9rEYCoRhqL6jo-iZbgC704BrWoUYQEnr3Jb"
        "3ISxMnLXynyJHtc1AziPVj-JaOdGDVC9vO8PTF0LLBd7lZN3JW-OYMaNC8ZXi5vfs7zsIItzASpi"
        "BkrBKcnoa6Msergx-8uO-TNc8Ne-vQDF2W7LKGLVd9_CxTnoBATeo3d5Un2o3jNDiUn1hSrOvDSz"
        "Cls9roozim82ml0YOZVyjTqdIaNaonDhJOqOdRiQNKGJZFnHW8NlQAjotYEExpXbEt5PxzZIlDOj"
        "h4LBLD460Sez3EUucsL6KRn9jKnJR7BaKlg4Zsk_RR9PN1EhXT7Z67Y_GnVBKs7gmg7ak3Q7RLoC"
        "SbejC-xP5VjJiKen-e36PS0BVPcAnJt_c02Q_oOIUe0jDWd6ftAjaf9B0v1FjcDmg-TwEfT913xv"
        "5ZGM2Xx2MSzD10ij5CdRjXjLy-G9stfusewRr98trf8pY-f5Cwd3H-k",
        31, "exactly_once"),
    # zoo20's stop-failure draw changed the fuzzer's path: a run with no savepoint or
    # clock-timed fault, which needs a checkpoint while the readers are backpressured
    "at-least-once-mode_1": (
        "of1.eNqNUtuS4iAQ_Ree0YrOqFP-ypRFtaQT2SBQDehYU_n37SY77vq2eWrC4dzgW9kL2ilFF0pW"
        "x2_VV4KzR5NLJFTHQhW14k2kG3h13K07ra7wZWwMthJhKOq44V-"
        "xZ7SqAbwbA_ZKK8ICTsbjm1bFXTFWxn50wlCix0VnAOexNy8uulmrAaqX-"
        "fPE5LVA2_hUUFYeIZcVy-OqqZ5EKhegIv6hFLwmAR-06tHDg_XXO2bMcMMfBWHNrNlXj39WKE637"
        "--HHS9cmDhNuUeTLpDRjD6eOf6Sw3MqkcoFk3DxFCDlS5Qq5tPcUC6MgjnXYUAyhDZSz-APzYVDC"
        "OiNhQTWFfa31-"
        "qXY9_E59eH7uXbauWhYLAP2dxLVqHi_jPLcZlcPiVrnqCt9FuTj9AbcdtA4imm6OP4EFdygQkIvO"
        "cw-dps3ZCKs7gEwn6U6xwi3YHkMicXuB6VYyWLvH45vV3WPIm0-wc46ycXITcIoZ3-"
        "YZOa_4NLYEuvX8E8X9K-9SNp2Xp2MbSHeI80SXaJOeEjt5_P-"
        "ve7vze96fhonvDeGuIxeSdvYzPPvwGFWQS0",
        65, "exactly_once"),
    # a finished task stuck waiting for its own final checkpoint's notification, which a
    # later completion subsumed: it needs the hops' latency and a re-drawn run as well
    "final-notification-exact_1": (
        "of1.eNqVktuOozAMht_F10wFPay2vEpVIU8wbZaQRDmUVhXvvjZVmWH3ZrdcFGLns__ffoK6kuq9"
        "0zZFqJ_Q5oCfhpqYXCCoU8hUAAcp3NBAXW4OBQx4b5SzKodANkG95SPXcjag0RdLLRQQKKGWV4km"
        "PZDLnFkdy03J387Qq0yH2lDbrJoopwI6zEbeT2dm54Rz4ASdtmg-rEu60wqTdvaD7qgSnKViTBiS"
        "iMCUaPBypdoX0JLBB9SHjYAj3uhdSOCRS7fZcPOnslg9EiQRwA1HbXuWl0bX-CtGglmTthep9pm7"
        "jkITSLnQMpZLqitaS6ZR6FHpxNV3BfzS3FYQD5loMJFVHNhujuXqtxcpgmKPY5L0ik-"
        "8apYr80n2xmHbiLUzchJbvTPu8pCmZEYeAxpDRseBndj-"
        "LOBGIWlFov0J1F5kZp0LIwaZWa8ty4XoclAicXV_9_oeZj-y_pY4FQuLvbl-gUb-c-"
        "OfoGoB7d-gV2L5v6Svlqo1qfpO-lufDPMf1EnadBZf77ZZVvjHPCQZIZsZeQPn6qMLvcxDrO_pEW"
        "fishHb43uXDrtdyZHY08j3hBK90bKM-2n6DWuGJ14",
        29, "liveness"),
}


@pytest.mark.parametrize("name", sorted(STUCK))
def test_a_timing_bound_counterexample_shrinks_to_a_readable_size(name: str) -> None:
    token, records, prop = STUCK[name]
    scenario = decode(token)
    assert scenario.workload.records == records
    found = violation_of(scenario)
    assert found is not None and found.property == prop
    shrunk = shrink(scenario, finding=found, max_tries=400)
    assert shrunk is not None
    out = shrunk.scenario
    assert out.workload.records <= READABLE_RECORDS, out.size
    assert shrunk.finding.property == prop
    # a real counterexample, of its mutant
    assert violation_of(out) is not None
    assert violation_of(evolve(out, mutants=())) is None


def test_re_timed_candidates_only_above_the_readable_size() -> None:
    """The re-timed runs (smaller buffers, the plan's moments earlier) are candidates only
    while a scenario has more than READABLE_RECORDS records; each has exactly that many,
    and moves every savepoint by one factor."""
    scenario = decode(STUCK["abort-discards_1"][0])
    retimed = [c for c in _candidates(scenario)
               if c.workload.records == READABLE_RECORDS and c.savepoints != scenario.savepoints]
    assert retimed
    for c in retimed:
        scales = {round(a.at / b.at, 2) for a, b in zip(c.savepoints, scenario.savepoints)
                  if b.at}
        assert len(scales) == 1 and 0 < scales.pop() < 1
        assert c.timing.buffer_records <= 2
    small = evolve(scenario, workload=evolve(scenario.workload, records=READABLE_RECORDS))
    assert not [c for c in _candidates(small) if c.savepoints != small.savepoints
                and c.workload.records == READABLE_RECORDS and c.timing != small.timing]


def test_fewer_records_costing_more_keep_the_reading_time() -> None:
    """Fewer records, each costing as much more as the input takes to read as before."""
    scenario = decode(STUCK["splits-back-include-checkpointed_3"][0])
    w, t = scenario.workload, scenario.timing
    pairs = {(c.workload.records, c.timing.record_cost) for c in _candidates(scenario)
             if c.timing.buffer_records == t.buffer_records}
    for records in (1, 5, 10, READABLE_RECORDS):
        assert (records, round(t.record_cost * w.records / records, 3)) in pairs


def test_a_rescale_chain_or_its_last_link_can_be_dropped() -> None:
    """A failure on a plain restore does not need the rescale chain drawn with it: the
    chain, and its last link, are candidates."""
    from onceflow import RescaleStep, SavepointRequest  # noqa: PLC0415

    scenario = decode(STUCK["splits-back-include-checkpointed_3"][0])
    chained = evolve(scenario, rescales=(
        RescaleStep(2, "checkpoint", 0, ()),
        RescaleStep(3, "checkpoint", 0, (SavepointRequest(at=1.0),))))
    rescales = {c.rescales for c in _candidates(chained)}
    assert () in rescales and chained.rescales[:1] in rescales
