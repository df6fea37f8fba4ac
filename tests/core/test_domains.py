import json

import pytest

from clickloop.domains import load_domain
from clickloop.errors import ConfigurationError, UnknownIdError


def test_builtin_domains_have_the_papers_data():
    eco = load_domain("ecommerce")
    wiki = load_domain("wikipedia")
    assert len(eco.topics) == 50 and len(wiki.topics) == 50
    assert [p.name for p in eco.personas] == [
        "Price",
        "Quality",
        "Brand Reputation",
        "Features & Functionality",
        "Ethical Considerations",
    ]
    assert len(wiki.personas) == 5
    assert "Racks, Shelves & Drawers" in eco.topics
    assert eco.banned_words == ("best", "where")
    for domain in (eco, wiki):
        for name, template in domain.prompts.items():
            # the paper's prompts are as first written; guided-ee's exploit prompt is at its second
            assert template.version == ("2" if name == "guided_exploit" else "1"), name


def test_populations_from_names_and_labels():
    eco = load_domain("ecommerce")
    assert [p.name for p in eco.population("quality, price").personas] == ["Quality", "Price"]
    assert len(eco.population("3 Preference").personas) == 3


def test_unknown_persona_lists_valid_ones():
    with pytest.raises(UnknownIdError, match="Brand Reputation"):
        load_domain("ecommerce").population("Qualty")


def test_unknown_domain_lists_valid_ones():
    with pytest.raises(UnknownIdError, match="ecommerce, wikipedia"):
        load_domain("recipes")


def test_judge_prompt_has_rubric_topic_persona_and_format():
    text = (
        load_domain("ecommerce")
        .prompt("judge")
        .render(topic="Spray Bottles", persona_name="Quality", persona_description="Cares about build.", question="Q?")
    )
    assert "Spray Bottles" in text and "Quality. Cares about build." in text and "Score: <score>" in text
    assert "8-9: very relevant" in text


def test_missing_slot_is_an_error():
    with pytest.raises(ConfigurationError, match="needs values"):
        load_domain("ecommerce").prompt("init").render(topic="X")


def write_domain(tmp_path, **overrides):
    data = {
        "name": "recipes",
        "personas": [{"name": "Vegan", "description": "Eats no animal products."}],
        "topics": ["Lasagne"],
        "prompts": {
            "judge": {"text": "Rate $question for $persona_description on $topic. Score: <score>"},
            "init": {"text": "# version: 3\nWrite $n questions about $topic, max $max_words words."},
            "iterate_ctr": "ctr.txt",
            "iterate_plain": {"text": "$questions $topic $max_words"},
            "exploit": {"text": "$history $topic $max_words"},
        },
    }
    data.update(overrides)
    (tmp_path / "ctr.txt").write_text("$history about $topic ($max_words)")
    path = tmp_path / "recipes.json"
    path.write_text(json.dumps(data))
    return path


def test_user_domain_from_file(tmp_path):
    domain = load_domain(str(write_domain(tmp_path)))
    assert domain.name == "recipes"
    assert domain.prompt("init").version == "3"
    assert "about Lasagne" in domain.prompt("iterate_ctr").render(history="h", topic="Lasagne", max_words=15)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"prompts": {"judge": {"text": "x"}}}, "prompts .* are missing"),
        ({"personas": [{"name": "x"}]}, "'name' and 'description'"),
        ({"populations": {"both": ["Vegan", "Keto"]}}, "unknown persona 'Keto'"),
    ],
)
def test_bad_domain_files(tmp_path, override, match):
    with pytest.raises(ConfigurationError, match=match):
        load_domain(str(write_domain(tmp_path, **override)))
