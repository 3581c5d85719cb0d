"""The page at `/` in a real browser: Debian's headless Chromium driven by Playwright."""

from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # a real browser against a running server

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def page(live_server, tmp_path_factory):
    if not CHROMIUM.is_file():
        pytest.fail("/usr/bin/chromium is missing: install Debian's chromium and chromium-driver (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        page = browser.new_page()
        page.goto(live_server + "/")
        yield page
        browser.close()


def _api_prediction(live_server, text):
    import httpx

    return httpx.post(live_server + "/predict", json={"texts": [text]}).json()["predictions"][0]


def test_typing_a_review_shows_the_prediction(page, live_server):
    review = "An absolute delight from start to finish, with a wonderful cast."
    page.fill("#text", review)
    page.click("#classify")
    verdict = page.wait_for_selector("#verdict", timeout=15000).inner_text()
    expected = _api_prediction(live_server, review)
    assert verdict == f"{expected['label_name']} · {100 * expected['probability']:.1f}%"
    bars = page.locator(".bar").all_inner_texts()
    assert [b.split("\n")[0] for b in bars] == ["Negative", "Positive"]


def test_examples_are_one_click_away(page, live_server):
    page.wait_for_selector("button.example")
    examples = page.locator("button.example")
    assert examples.all_inner_texts() == ["A wonderful, moving film.", "Dull and far too long."]
    page.evaluate(
        "document.getElementById('result').replaceChildren()"
    )  # so an earlier verdict cannot pass for this one
    examples.nth(1).click()
    page.wait_for_function("document.getElementById('text').value === 'Dull and far too long.'")
    expected = _api_prediction(live_server, "Dull and far too long.")
    shown = f"{expected['label_name']} · {100 * expected['probability']:.1f}%"
    page.wait_for_function(
        "(shown) => document.getElementById('verdict')?.textContent === shown", arg=shown, timeout=15000
    )
    assert "accuracy" in page.inner_text("#model-line")


def test_why_highlights_the_words_that_pushed_the_answer(page, live_server):
    """The Why? button: the text's words shaded green (towards the answer) or red (against), as POST /explain
    scores them."""
    import httpx

    review = "A wonderful cast, but the plot was dull."
    page.fill("#text", review)
    page.click("#explain")
    page.wait_for_selector("#why-words .word", timeout=30000)
    expected = httpx.post(live_server + "/explain", json={"texts": [review]}).json()["predictions"][0]
    words = page.locator("#why-words .word")
    shown = [(w.inner_text(), float(w.get_attribute("data-score"))) for w in words.all()]
    assert [w for w, _ in shown] == [w["word"] for w in expected["explanation"]["words"]]
    assert [s for _, s in shown] == [w["score"] for w in expected["explanation"]["words"]]
    colours = words.evaluate_all("spans => spans.map(s => getComputedStyle(s).backgroundColor)")
    for (_, score), colour in zip(shown, colours):
        if abs(score) > 0.2:  # a visible shade, green for a push towards the answer and red against it
            red, green = (int(v) for v in colour[colour.index("(") + 1 :].split(",")[:2])
            assert (green > red) == (score > 0), (score, colour)
    assert "up (green) or down (red)" in page.inner_text("#why")
    assert page.inner_text("#verdict").startswith(expected["label_name"])


def test_an_empty_box_asks_for_text(page):
    page.fill("#text", "   ")
    page.click("#classify")
    assert page.wait_for_selector("#error").inner_text() == "Type a review first."


def test_a_multi_label_run_lists_its_tags(page, tmp_path, tiny_distilbert):
    """The same page for a multi-label run: the tags above their thresholds, and a bar per tag."""
    import json

    from conftest import serving

    from lora_sentiment import TrainConfig, load_classifier, train

    rows = [
        {"text": f"comment {i} " + ("happy" if i % 2 else "angry"), "label": [["anger"], ["joy", "love"]][i % 2]}
        for i in range(40)
    ]
    (tmp_path / "tags.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    long_example = "So happy with how this turned out, " * 4
    config = TrainConfig(
        model=tiny_distilbert, data=str(tmp_path / "tags.jsonl"), output_dir=str(tmp_path / "run"), max_length=16,
        epochs=1, precision="fp32", threshold=0.2, examples=["happy", long_example],
    )  # fmt: skip
    run = train(config, log=lambda _: None).output_dir
    with serving(run, load_classifier(run, precision="fp32")) as url:
        page.goto(url + "/")
        page.wait_for_function("document.getElementById('model-line').textContent.includes('multi-label')")
        page.fill("#text", "so happy")
        page.click("#classify")
        verdict = page.wait_for_selector("#verdict", timeout=15000).inner_text()
        expected = _api_prediction(url, "so happy")
        assert verdict == (" · ".join(expected["labels"]) or "No label above its threshold")
        assert sorted(b.split("\n")[0] for b in page.locator(".bar").all_inner_texts()) == ["anger", "joy", "love"]
        # Why? for a tag of the user's choosing (the likeliest one unless chosen), as POST /explain's "label"
        assert page.locator("#why-label option").all_inner_texts() == ["the likeliest tag", "anger", "joy", "love"]
        page.select_option("#why-label", "love")
        page.click("#explain")
        page.wait_for_selector("#why-words .word", timeout=30000)
        assert page.inner_text("#why").startswith("Words that pushed love up")
        # a long example (a run's own evaluation text) shows its start on the button and goes in whole (last: its
        # click classifies it, and that verdict must not stand for another text's)
        buttons = page.locator("button.example")
        assert buttons.all_inner_texts() == ["happy", long_example[:89].rstrip() + "\u2026"]
        buttons.nth(1).click()
        page.wait_for_function("(t) => document.getElementById('text').value === t", arg=long_example)


def test_the_model_picker_switches_between_served_runs(page, tiny_runs):
    """Several runs on one server: the page lists them, and each choice shows and classifies with its own labels."""
    import httpx
    from conftest import serving

    from lora_sentiment.inference.shared_base import load_classifiers
    from lora_sentiment.serving.app import ManyModels

    models = ManyModels(load_classifiers(sorted(tiny_runs.glob("*")), precision="fp32"))
    with serving(None, models) as url:
        page.goto(url + "/")
        page.wait_for_selector("#model-row", state="visible")
        assert page.locator("#model option").all_inner_texts() == [
            "sentiment (Negative, Positive)",
            "stars (1-2, 3-4, 7-8, 9-10)",
        ]
        page.select_option("#model", "stars")
        page.wait_for_function("document.getElementById('model-line').textContent.includes('1-2')")
        review = "Three stars at most: the middle drags."
        page.fill("#text", review)
        page.click("#classify")
        verdict = page.wait_for_selector("#verdict", timeout=15000).inner_text()
        expected = httpx.post(url + "/predict", json={"model": "stars", "texts": [review]}).json()["predictions"][0]
        assert verdict == f"{expected['label_name']} · {100 * expected['probability']:.1f}%"
        assert [b.split("\n")[0] for b in page.locator(".bar").all_inner_texts()] == ["1-2", "3-4", "7-8", "9-10"]
