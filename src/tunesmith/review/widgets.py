"""The review page's forms for every family's item (`contracts.ReviewHooks.widget`), and the value each form sends.

    html = card(item, token_input, root)            # the item card: what was served, and the form
    value = form_value(item, form)                   # the reviewer's value, before the family's check

Widgets: labels (a checkbox per label), value (a number), spans (the text with entities as [words](TYPE) markup),
grade (relevance 0-3), document (a query's nearest logged texts, or a typed document) and answer (accept, reject
or rewrite a chat answer). A classifier's label buttons stay in web.py. Every logged text is escaped: it is user
input. Shortcuts (web.KEYS_JS): Enter/a accept, digits pick a grade or candidate, r reject, s skip, u undo,
Ctrl+Enter saves a form being typed in.
"""

from __future__ import annotations

import re
from html import escape
from typing import Any

MARKUP = re.compile(r"\[([^\[\]\n]+)\]\(([A-Za-z][A-Za-z0-9_.-]*)\)")
GRADES = (0, 1, 2, 3)
GRADE_NAMES = {0: "not relevant", 1: "somewhat", 2: "relevant", 3: "perfect"}


class FormError(ValueError):
    """A form that does not give a value (names the field)."""


def spans_to_markup(text: str, spans: list[dict]) -> str:
    """The text with each entity written [words](TYPE); overlapping or out-of-range spans are left out."""
    out, at = [], 0
    for span in sorted(spans or [], key=lambda s: (s["start"], s["end"])):
        start, end = int(span["start"]), int(span["end"])
        if start < at or end > len(text) or start >= end:
            continue
        out += [text[at:start], f"[{text[start:end]}]({span['label']})"]
        at = end
    return "".join(out) + text[at:]


def markup_to_spans(markup: str, text: str) -> list[dict]:
    """[words](TYPE) markup back to {start, end, label} spans of `text`; the words outside the brackets must be the
    served text unchanged (a reviewer marks entities, never edits what the user wrote)."""
    spans, plain, at = [], [], 0
    for m in MARKUP.finditer(markup):
        plain.append(markup[at:m.start()])
        start = sum(map(len, plain))
        plain.append(m.group(1))
        spans.append({"start": start, "end": start + len(m.group(1)), "label": m.group(2)})
        at = m.end()
    plain.append(markup[at:])
    if "".join(plain).replace("\r\n", "\n") != text.replace("\r\n", "\n"):
        raise FormError("markup: the text outside [words](TYPE) must stay the served text; only add, move or remove "
                        "brackets")
    return spans


def form_value(item: dict, form: dict[str, str]) -> tuple[str, Any]:
    """(action, value) from a posted form: action is accept, reject or save; the value is the family's feedback
    shape (checked afterwards by `FeedbackHooks.check`)."""
    ctx, choice = item["context"], form.get("choice", "")
    widget = ctx.get("widget")
    if choice == "accept":
        if ctx.get("guess") is None:
            raise FormError("choice: this item has no model answer to accept; give the value")
        return "accept", ctx["guess"]
    if choice.startswith("grade:") and widget == "grade":
        return "save", choice[6:]
    if choice.startswith("doc:") and widget == "document":
        candidates = ctx.get("candidates") or []
        try:
            chosen = candidates[int(choice[4:])]["document"]
        except (ValueError, IndexError):
            raise FormError(f"choice: no candidate {choice[4:]!r}") from None
        # the candidates shown and passed over: the pair's hard negatives
        return "save", {"document": chosen, "relevance": 1.0,
                        "negatives": [c["document"] for c in candidates if c["document"] != chosen]}
    if choice == "reject" and widget == "answer":
        return "reject", {"thumbs": "down"}
    if choice != "save":
        raise FormError("choice: one of accept, save, skip (and grade:N, doc:N, reject where the form has them)")
    if widget == "labels":
        return "save", [key[6:] for key in form if key.startswith("label:") and key[6:]]
    if widget in ("value", "grade"):
        return "save", form.get("value", "")
    if widget == "spans":
        return "save", markup_to_spans(form.get("markup", ""), str(ctx.get("input", item["text"])))
    if widget == "document":
        typed = form.get("document", "").strip()  # none of the candidates was relevant: all are hard negatives
        return "save", {"document": typed, "relevance": 1.0,
                        "negatives": [c["document"] for c in ctx.get("candidates") or [] if c["document"] != typed]}
    if widget == "answer":
        correction = form.get("correction", "").strip()
        if not correction:
            raise FormError("correction: write the answer it should have been, or press Reject")
        return "save", {"thumbs": "down", "correction": correction}
    raise FormError(f"this queue's items have an unknown form {widget!r}")


def _button(choice: str, text: str, key: str | None = None, *, ident: str | None = None, primary=False) -> str:
    kbd = f" <kbd>{escape(key)}</kbd>" if key else ""
    ident_attr = f" id='{ident}'" if ident else ""
    cls = " class='primary'" if primary else ""
    return f"<button type='submit' name='choice' value='{escape(choice)}'{ident_attr}{cls}>{text}{kbd}</button>"


def _accept(item: dict, text: str = "Accept the model's answer") -> str:
    return _button("accept", text, "Enter", ident="accept", primary=True) if item["context"].get("guess") is not None \
        else ""


def card(item: dict, token_input: str, root: str) -> str:
    """The item card of a family's item: what was served, the model's answer and the widget's form."""
    ctx = item["context"]
    widget = ctx.get("widget")
    body = {"labels": _labels, "value": _value, "spans": _spans, "grade": _grade, "document": _document,
            "answer": _answer}.get(widget, _unknown)(item)
    version = f" v{item['model_version']}" if item["model_version"] is not None else ""
    return (f"<div class='card' id='item' data-item-id='{item['id']}' data-widget='{escape(str(widget))}'>"
            f"<span class='badge' id='source'>{escape(item['source'])}</span> <span class='badge'>"
            f"{escape(str(ctx.get('family', '')))}</span> <span class='meta'>item {item['id']}{escape(version)} · "
            f"uncertainty {item['uncertainty']:.2f}</span>"
            f"<form method='post' action='{root}/label' id='label-form'><input type='hidden' name='item_id' "
            f"value='{item['id']}'>{token_input}{body}"
            f"<div><button type='submit' name='choice' value='skip' id='skip'>Skip <kbd>s</kbd></button></div>"
            "</form></div>")


def _text_block(text: str) -> str:
    return f"<div id='item-text'>{escape(text)}</div>"


def _labels(item: dict) -> str:
    ctx = item["context"]
    chosen = set(ctx.get("guess") or [])
    scores = ctx.get("scores") or {}
    boxes = []
    for i, lab in enumerate(ctx.get("labels") or sorted(chosen), 1):
        p = scores.get(lab)
        shown = f" <span class='meta'>({p:.0%})</span>" if isinstance(p, int | float) else ""
        checked = " checked" if lab in chosen else ""
        boxes.append(f"<label class='choice'><input type='checkbox' name='label:{escape(lab)}' id='check-{i}'"
                     f"{checked}> {escape(lab)}{shown}</label> ")
    boxes = "".join(boxes)
    return (f"{_text_block(item['text'])}<p>model's labels: <span id='guess'>{escape(item['guess'] or 'none')}"
            f"</span></p><fieldset id='labels'><legend>the true label set</legend>{boxes}</fieldset>"
            f"{_button('save', 'Save the checked labels', 'Ctrl+Enter', ident='save')}{_accept(item)}")


def _value(item: dict) -> str:
    guess = item["context"].get("guess")
    shown = "" if guess is None else f"{float(guess):g}"
    return (f"{_text_block(item['text'])}<p>model's value: <span id='guess'>{escape(shown or '-')}</span></p>"
            f"<label>the true value <input type='number' step='any' name='value' id='value' value='{escape(shown)}'"
            f" required></label> {_button('save', 'Save the value', 'Enter in the field', ident='save')}"
            f"{_accept(item)}")


def _spans(item: dict) -> str:
    ctx = item["context"]
    text = str(ctx.get("input", item["text"]))
    guess = ctx.get("guess") or []
    marked, at = [], 0
    for span in sorted(guess, key=lambda s: s["start"]):
        if span["start"] < at:
            continue
        marked += [escape(text[at:span["start"]]),
                   f"<mark data-label='{escape(span['label'])}'>{escape(text[span['start']:span['end']])}"
                   f"<sub>{escape(span['label'])}</sub></mark>"]
        at = span["end"]
    marked.append(escape(text[at:]))
    return (f"<div id='item-text'>{''.join(marked)}</div><p class='meta'>Edit the entities: write each one as "
            "[words](TYPE); remove the brackets to drop one. The words themselves must stay as they are.</p>"
            f"<textarea name='markup' id='markup' rows='4' cols='80'>{escape(spans_to_markup(text, guess))}"
            f"</textarea><div>{_button('save', 'Save the entities', 'Ctrl+Enter', ident='save')}"
            f"{_accept(item, 'Accept as highlighted')}</div>")


def _grade(item: dict) -> str:
    ctx = item["context"]
    score = ctx.get("score")
    buttons = "".join(_button(f"grade:{g}", f"{g} {GRADE_NAMES[g]}", str(g), ident=f"label-{g}") for g in GRADES)
    shown = f"{score:.1%}" if isinstance(score, int | float) else "-"
    return (f"<p class='meta'>query</p><div id='query'>{escape(str(ctx.get('query', '')))}</div>"
            f"<p class='meta'>document</p><div id='item-text'>{escape(str(ctx.get('document', '')))}</div>"
            f"<p>model's relevance: <span id='guess'>{shown}</span> (accept: "
            f"{escape(item['guess'] or '-')})</p><div id='grades'>{buttons}</div>{_accept(item)}")


def _document(item: dict) -> str:
    candidates = item["context"].get("candidates") or []
    rows = "".join(
        f"<li>{_button(f'doc:{i}', escape(c['document']), str(i + 1) if i < 9 else None, ident=f'label-{i + 1}')}"
        f" <span class='meta'>cosine {c['similarity']:.3f}</span></li>" for i, c in enumerate(candidates))
    return (f"<p class='meta'>query</p>{_text_block(item['text'])}<p>Which document is relevant to this query? "
            f"(the nearest logged texts by the served embeddings; the model's pick is first)</p>"
            f"<ol id='candidates'>{rows}</ol><label>another document <textarea name='document' id='document' "
            f"rows='2' cols='80'></textarea></label>{_button('save', 'Save the typed document', 'Ctrl+Enter', ident='save')}")


def _answer(item: dict) -> str:
    ctx = item["context"]
    turns = "".join(f"<div class='turn'><b>{escape(str(m.get('role', '')))}</b>: {escape(str(m.get('content', '')))}"
                    "</div>" for m in ctx.get("messages") or [] if isinstance(m, dict))
    thumbs = ctx.get("thumbs")
    said = f"<p class='meta'>the user's feedback: thumbs {escape(thumbs)}</p>" if thumbs else ""
    return (f"<div id='conversation'>{turns}</div><p class='meta'>the model's answer</p>"
            f"<div id='item-text'>{escape(str(ctx.get('answer', '')))}</div>{said}"
            f"{_accept(item, 'Accept the answer')}{_button('reject', 'Reject', 'r', ident='reject')}"
            "<div><label>or rewrite it <textarea name='correction' id='correction' rows='5' cols='80'>"
            f"{escape(str(ctx.get('answer', '')))}</textarea></label></div>"
            f"{_button('save', 'Save the rewrite', 'Ctrl+Enter', ident='save')}")


def _unknown(item: dict) -> str:
    return f"{_text_block(item['text'])}<p>This item's form is unknown to this tunesmith version; skip it.</p>"
