"""The boundary between Gradio and the page's callbacks:

- a tab's form is one object (`Form`, a dataclass per tab) read from the dict Gradio passes for a
  set of inputs (`inputs={a, b, c}`), and `request_options` is the one way from a form to
  `RequestOptions`;
- callbacks speak in names (`{"card": html, "kept": None}`); the tab's `View` (its components by
  name) gives Gradio `{component: update}`, so nothing depends on the order of an outputs list;
- `KeptTab` is the skeleton of the tabs that run one action and keep its result (Analyze, Long
  recording, Batch, Compare): Start disables the button and blanks the views (`begin`), runs the
  action with progress on the card (`finish`: the result drawn, or its error drawn on the card)
  and shows the error as a toast (`show_error`); a new upload drops the result (`cleared`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace

import gradio as gr

from ...request import RequestOptions
from . import render
from .common import PRIVATE, busy, owned, partial_event, ready, show_error


def label_set_fields(labels, sentiment) -> dict:
    """The request fields of label_set_inputs' values."""
    return {"labels": ",".join(labels or []), "sentiment": bool(sentiment)}


@dataclass(frozen=True)
class Form:
    """A tab's form: the values of its inputs when an event fires, by name (a dataclass per tab,
    whose fields are named as the tab's View names the components). Built by `View.read` from the
    dict Gradio passes for a set of inputs, or directly by a test or an API function."""

    lang: str = "en"  # the page's language (a gr.State)

    def __post_init__(self):
        object.__setattr__(self, "lang", self.lang or "en")

    def fields(self) -> dict:
        """The request fields the form asks for (RequestOptions.from_fields); none by default."""
        return {}


@dataclass(frozen=True)
class LabelledForm(Form):
    """A form with label_set_inputs: a label set (several of the 9 emotions; none: all) and sentiment."""

    labels: list | None = None
    sentiment: bool = False


def request_options(form: Form, engine=None, **defaults) -> RequestOptions:
    """What a tab's form asks of the service: its request fields, its label set and sentiment, and
    the heads trained in this session (`session_heads`) beside the engine's own. `defaults` as for
    RequestOptions.from_fields. Raises OptionError (shown by `guarded`) for a bad combination."""
    from ...model.head import Head

    asked = form.fields()
    if isinstance(form, LabelledForm):
        asked |= label_set_fields(form.labels, form.sentiment)
    request = RequestOptions.from_fields(asked, **defaults)
    heads = getattr(form, "session_heads", None)
    if heads:
        request = replace(request, heads=(*engine.heads, *(Head.load(p) for p in heads)))
    return request


class View:
    """A tab's components by name, and the adapter between them and the tab's callbacks.

    Callbacks take plain values (a `Form`) and return their outputs by name; `handler` makes one an
    event function: with `form`, the event's inputs are `inputs(form, ...)` (a set, so Gradio
    passes one dict {component: value}) read into the form; a returned {name: value} goes back to
    Gradio as {component: value} (outputs not named are left as they are)."""

    def __init__(self, **components):
        self.components = components

    def __getitem__(self, name: str):
        return self.components[name]

    def __setitem__(self, name: str, component) -> None:
        self.components[name] = component

    def outputs(self, *names: str) -> list:
        return [self.components[n] for n in names]

    def inputs(self, form: type[Form], *before: str) -> set:
        """The components of `form`'s fields (and of the names in `before`), as a set of inputs."""
        return {self.components[n] for n in (*before, *(f.name for f in fields(form)))}

    def read(self, form: type[Form], values: Mapping):
        """The form filled from Gradio's {component: value}."""
        return form(**{f.name: values[self.components[f.name]] for f in fields(form)})

    def updates(self, named: Mapping) -> dict:
        """{name: value} -> {component: value}."""
        return {self.components[name]: value for name, value in named.items()}

    def handler(
        self,
        fn: Callable,
        *bound,
        form: type[Form] | None = None,
        before: tuple = (),
        named: bool = True,
        keywords: Mapping | None = None,
    ) -> Callable:
        """`fn(*bound, ..., **keywords)` as an event function. With `form` its inputs are
        `inputs(form, *before)`, and fn is called as fn(*bound, *values of `before`, form, progress if
        it takes one). `named`: a dict fn returns is its outputs by name; else it is the one output's
        value (a JSON result). `keywords`: the server's objects (the memory budget), not inputs.
        Named like fn, which Gradio shows as the event's name; Gradio reads the signature made here
        (a gr.Progress default is how it knows to track progress). Its output folders are the
        logged-in user's (`owned`)."""
        call, params = partial_event(fn, *bound, **(keywords or {}))
        if form is not None:  # (*before, form, ...) -> (values, ...): Gradio's one dict
            params = [inspect.Parameter("values", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params[len(before) + 1 :]]

        def event(*args, **kwargs):
            if form is not None:
                values, args = args[0], args[1:]
                args = (*(values[self.components[n]] for n in before), self.read(form, values), *args)
            out = call(*args, **kwargs)
            return self.updates(out) if named and isinstance(out, dict) and not gr_update(out) else out

        return owned(event, params, fn.__name__)


def gr_update(value: dict) -> bool:
    """A gr.update() or gr.skip() (a dict itself), not a callback's {name: value}."""
    return "__type__" in value


def begin(draw: Callable, lang: str) -> dict:
    """The moment Start is pressed: the button disabled, the result dropped, "working" on the card."""
    return {"start": busy(), "kept": None, **draw(None, lang), "card": render.working_card(lang)}


def cleared(draw: Callable, lang: str) -> dict:
    """A new upload: the old result goes."""
    return {"kept": None, **draw(None, lang)}


def finish(run: Callable, draw: Callable, lang: str) -> dict:
    """Start's action: `run()` kept and drawn, the button ready again. A gr.Error is drawn on the card
    (no earlier result stays beside it) and returned as "error" for the toast (show_error)."""
    try:
        kept = run()
    except gr.Error as exc:
        return {
            **draw(None, lang),
            "kept": None,
            "card": render.error_card(exc.message, lang),
            "start": ready(),
            "error": exc.message,
        }
    return {"kept": kept, **draw(kept, lang), "start": ready(), "error": ""}


@dataclass
class KeptTab:
    """A tab whose views are drawn from one kept result (the gr.State `view["kept"]`), and what the
    page shell needs to redraw it in another language.

    `draw` takes the kept result (or None), the language and the values of the components named in
    `redrawn`, and returns {name: value} of the views `names`, the "card" among them (where
    progress, "working" and errors show)."""

    view: View
    draw: Callable
    names: tuple
    redrawn: tuple = ()  # more inputs of draw (e.g. the Analyze tab's choice of raw or smoothed)

    @property
    def views(self) -> list:
        return self.view.outputs(*self.names)

    @property
    def inputs(self) -> list:
        """The inputs of `redraw` after the language."""
        return self.view.outputs("kept", *self.redrawn)

    def redraw(self, lang: str, kept, *values) -> list:
        drawn = self.draw(kept, lang, *values)
        return [drawn[n] for n in self.names]

    def wire(self, action: Callable, form: type[Form], new_upload: str | None, **queue) -> None:
        """The skeleton's events: Start ("start": begin, `action` (a view.handler of `form`),
        show_error) and, with `new_upload`, a change of that upload (`cleared`). `queue`: the
        action's concurrency_limit and concurrency_id."""
        v = self.view
        v["error"] = gr.State("")
        outputs = v.outputs("start", "kept", *self.names, "error")
        v["start"].click(v.handler(begin, self.draw), v["lang"], outputs, queue=False, **PRIVATE).then(
            action, v.inputs(form), outputs, show_progress_on=v["card"], **queue, **PRIVATE
        ).then(show_error, v["error"], None, **PRIVATE)  # fmt: skip
        if new_upload is not None:
            v[new_upload].change(v.handler(cleared, self.draw), v["lang"], v.outputs("kept", *self.names), **PRIVATE)
