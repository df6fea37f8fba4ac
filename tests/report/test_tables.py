import pytest

from clickloop.report.stats import PairwiseTest
from clickloop.report.tables import iteration_table, llm_table, table5, table5_plain, ztest_table


def result(ctr, mean_score=None, llm=None):
    """A strategy result from a CTR series (fractions); 1000 sessions per iteration."""
    out = {
        "ctr": ctr,
        "mean_score": mean_score if mean_score is not None else [5.0] * len(ctr),
        "avg_ctr": sum(ctr[1:]) / len(ctr[1:]),
        "last_ctr": ctr[-1],
        "sessions": [1000] * len(ctr),
        "clicks": [round(1000 * value) for value in ctr],
    }
    if llm is not None:
        out["llm"] = llm
    return out


@pytest.fixture
def summary():
    # strategies listed out of order on purpose; "alpha" and "zeta" are not paper strategies
    return {
        "iterations": 2,
        "results": {
            "Quality": {
                "zeta": result([0.05, 0.05, 0.05]),
                "explore-exploit": result([0.05, 0.20, 0.234]),  # Avg 21.7%, Last 23.4%: best of both
                "full-ctr": result([0.05, 0.15, 0.182]),
                "no-drop": result([0.06, 0.06, 0.06]),
                "alpha": result([0.05, 0.05, 0.05]),
            },
            "Discussion-Focused": {
                "explore-exploit": result([0.1, 0.2, 0.3094]),  # Last ties full-ctr at one decimal
                "full-ctr": result([0.1, 0.25, 0.3088]),  # best Avg: 27.9%
            },
        },
    }


def header_and_rows(markdown):
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    split = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    return split[0], split[2:]


def test_table5_columns_follow_the_paper_order_then_alphabetical(summary):
    header, _ = header_and_rows(table5(summary))
    assert header[0] == "Population"
    assert header[1:] == [
        f"{name} {kind}"
        for name in ["no-drop", "full-ctr", "explore-exploit", "alpha", "zeta"]
        for kind in ("Avg", "Last")
    ]


def test_table5_shows_percentages_to_one_decimal_and_bolds_the_best(summary):
    header, rows = header_and_rows(table5(summary))
    quality = dict(zip(header, rows[0], strict=True))
    assert quality["Population"] == "Quality"
    assert quality["no-drop Avg"] == "6.0%"
    assert quality["full-ctr Avg"] == "16.6%"
    assert quality["full-ctr Last"] == "18.2%"
    assert quality["explore-exploit Avg"] == "**21.7%**"
    assert quality["explore-exploit Last"] == "**23.4%**"
    assert sum("**" in cell for cell in rows[0]) == 2


def test_table5_bolds_ties_at_shown_precision_and_marks_missing_strategies(summary):
    header, rows = header_and_rows(table5(summary))
    discussion = dict(zip(header, rows[1], strict=True))
    assert discussion["full-ctr Avg"] == "**27.9%**"
    assert discussion["explore-exploit Avg"] == "25.5%"
    assert discussion["full-ctr Last"] == "**30.9%**"
    assert discussion["explore-exploit Last"] == "**30.9%**"
    assert discussion["no-drop Avg"] == discussion["alpha Last"] == "–"


def test_table5_marks_incomplete_strategies_and_explains_them(summary):
    summary["results"]["Quality"]["full-ctr"] = result([0.05, 0.15])
    text = table5(summary)
    header, rows = header_and_rows(text)
    assert dict(zip(header, rows[0], strict=True))["full-ctr Last"] == "15.0%†"
    assert "† Incomplete" in text
    assert "full-ctr on Quality: 2 of 3 pools (IP_0..IP_1)" in text


def test_table5_plain_marks_the_best_with_a_star(summary):
    summary["results"]["Quality"]["zeta"] = result([0.05, 0.05])
    text = table5_plain(summary)
    lines = text.splitlines()
    assert lines[0].split() == ["Population", "no-drop", "full-ctr", "explore-exploit", "alpha", "zeta"]
    quality = next(line for line in lines if line.startswith("Quality"))
    assert "21.7*" in quality and "23.4*" in quality
    assert quality.count("*") == 2
    assert "5.0 †" in quality
    assert "**" not in text
    # numbers end where their column label ends: explore-exploit is the third group
    third_last_end = [i + 4 for i in range(len(lines[1])) if lines[1].startswith("Last", i)][2]
    assert quality.index("23.4") + 4 == third_last_end
    assert lines[0].index("explore-exploit") + len("explore-exploit") == third_last_end


def test_iteration_table_shows_ctr_in_percent_and_scores_with_two_decimals(summary):
    summary["results"]["Quality"]["full-ctr"] = result([0.05, 0.15], mean_score=[4.0, 5.125])
    header, rows = header_and_rows(iteration_table(summary, "Quality"))
    assert header == ["Pool", "no-drop", "full-ctr", "explore-exploit", "alpha", "zeta"]
    assert [row[0] for row in rows] == ["IP_0", "IP_1", "IP_2"]
    assert rows[2][3] == "23.4"
    assert rows[2][2] == "–"
    _, score_rows = header_and_rows(iteration_table(summary, "Quality", "mean_score"))
    assert score_rows[1][2] == "5.12"


def test_iteration_table_rejects_an_unknown_metric(summary):
    with pytest.raises(ValueError, match=r"metric \('clicks'\) must be 'ctr' or 'mean_score'"):
        iteration_table(summary, "Quality", "clicks")


def test_ztest_table_formats_percentages_p_values_and_stars():
    rows = [
        PairwiseTest("explore-exploit", "full-ctr", 0.234, 0.182, 9.123, 1e-9),
        PairwiseTest("explore-exploit", "no-drop", 0.06, 0.05, 2.19, 0.0283),
        PairwiseTest("explore-exploit", "alpha", 0.05, 0.05, 0.0, 1.0),
    ]
    header, body = header_and_rows(ztest_table(rows))
    assert header[:7] == ["A", "B", "CTR A (%)", "CTR B (%)", "Δ (pp)", "z", "p"]
    assert body[0] == ["explore-exploit", "full-ctr", "23.40", "18.20", "+5.20", "9.12", "<0.001", "***"]
    assert body[1][5:] == ["2.19", "0.028", "*"]
    assert body[2][6:] == ["1.000", ""]


def test_llm_table_sums_roles_over_populations(summary):
    generator = {"calls": 10, "cache_hits": 2, "prompt_tokens": 1500, "completion_tokens": 100, "seconds": 1.25}
    judge = {"calls": 4, "cache_hits": 0, "prompt_tokens": 800, "completion_tokens": 20, "seconds": 0.5}
    for population in ("Quality", "Discussion-Focused"):
        summary["results"][population]["full-ctr"]["llm"] = {"judge": judge, "generator": generator}
    header, rows = header_and_rows(llm_table(summary))
    assert header == ["Strategy", "Role", "Calls", "Cache hits", "Prompt tokens", "Completion tokens", "Seconds"]
    assert rows[0] == ["full-ctr", "generator", "20", "4", "3,000", "200", "2.5"]
    assert rows[1] == ["full-ctr", "judge", "8", "0", "1,600", "40", "1.0"]
    assert rows[2] == ["**Total**", "", "**28**", "**4**", "**4,600**", "**240**", "**3.5**"]


def test_llm_table_without_accounting_says_so(summary):
    assert "No LLM accounting" in llm_table(summary)
