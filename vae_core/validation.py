"""Settings that check themselves, and the one sentence that says what is wrong with one.

Every setting a person or a file can give (the model and training configs in vae_core/config.py, the
checkpoint record in vae_core/record.py, the teacher's limits in jobs/limits.py) is checked by pydantic v2, and
every refusal is said the same way, by `error_sentence`:

    latent_dim (latent dimensions) must be a whole number from 1 to 64; got 0.
    In the limits file /srv/latent_lab.toml, [limits] max_runs (runs training at once) must be a whole number
    from 1 to 64; got 'lots'.

one sentence: the setting (its key, then in people's words), what it must be (the whole allowed range), and the
value given, quoted to at most MAX_QUOTE characters (a 50 MB string is shown as its first hundred characters
and its length). A setting is declared in one line with its type, range and words:

    latent_dim: Annotated[int, Whole(1, MAX_LATENT_DIM, "latent dimensions")] = 2

(`Whole`, `Number`, `OneOf`, `Flag`, `Sizes`, `Text` are pydantic metadata: each gives the constraints and
the words of the sentence), on a class made by `@settings`: a frozen pydantic dataclass whose construction
raises `SettingError` (a ValueError) with that sentence. The types are strict: a bool is not a number, True is
not 1, the text '3' is not 3, NaN and infinity are refused, and sizes must be a tuple (from_dict turns JSON
lists into tuples).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import reprlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import annotated_types as at
import pydantic
from pydantic import AfterValidator, BeforeValidator, ConfigDict, PlainValidator, TypeAdapter, ValidationError
from pydantic.types import AllowInfNan, Strict

MAX_QUOTE = 100   # characters of a bad value that a sentence repeats


class SettingError(ValueError):
    """A bad setting; the text is one sentence (see error_sentence)."""


class Setting(at.GroupedMetadata):
    """Metadata of a setting: pydantic's constraints (what iterating gives) and what a sentence says about it:
    `words` (its name in people's words), `rule_text()` (what it must be, a verb phrase: 'be a whole number from
    1 to 64') and `span_text()` (its range in a few words, for tables: '1 to 64')."""

    words: str
    rule: str

    def rule_text(self) -> str:
        return self.rule

    def span_text(self) -> str:
        return ""

    def __iter__(self) -> Iterator[Any]:
        return iter(())


@dataclass(frozen=True)
class Whole(Setting):
    """A whole number from low to high (True is not a whole number here). high_words: the upper bound as people
    read it in a table when it is worked out (e.g. '4 × CPU cores')."""

    low: int
    high: int
    words: str
    rule: str = ""
    high_words: str = ""

    def rule_text(self) -> str:
        return self.rule or f"be a whole number from {self.low:,} to {self.high:,}"

    def span_text(self) -> str:
        return f"{self.low:,} to {self.high_words or f'{self.high:,}'}"

    def __iter__(self) -> Iterator[Any]:
        yield from (Strict(), at.Ge(self.low), at.Le(self.high))


@dataclass(frozen=True)
class Number(Setting):
    """A finite number in [low, high] (open_low / open_high: the bound itself is not allowed); whole numbers are
    taken as floats, booleans and text are refused."""

    low: float
    high: float
    words: str
    open_low: bool = False
    open_high: bool = False
    rule: str = ""
    span: str = ""

    def interval(self) -> str:
        return (f"{'(' if self.open_low else '['}{_number(self.low)}, {_number(self.high)}"
                f"{')' if self.open_high else ']'}")

    def rule_text(self) -> str:
        return self.rule or (f"be a number from {self.span}" if self.span else f"lie in {self.interval()}")

    def span_text(self) -> str:
        return self.span or self.interval()

    def __iter__(self) -> Iterator[Any]:
        yield from (Strict(), AllowInfNan(False), at.Gt(self.low) if self.open_low else at.Ge(self.low),
                    at.Lt(self.high) if self.open_high else at.Le(self.high))


@dataclass(frozen=True)
class OneOf(Setting):
    """One of some words; `options` may be a function (a registry read when a value is checked, so that an
    entry added later is accepted). fold_case: surrounding spaces and capitals are dropped first."""

    options: Sequence[str] | Callable[[], Sequence[str]]
    words: str
    rule: str = ""
    fold_case: bool = False

    def names(self) -> tuple[str, ...]:
        return tuple(self.options() if callable(self.options) else self.options)

    def rule_text(self) -> str:
        return self.rule or f"be one of {', '.join(self.names())}"

    def span_text(self) -> str:  # 'a, b or c'
        return " or ".join(", ".join(self.names()).rsplit(", ", 1))

    def _check(self, value: str) -> str:
        if value not in self.names():
            raise ValueError("not one of the choices")  # error_sentence says the rule instead
        return value

    def __iter__(self) -> Iterator[Any]:
        if self.fold_case:
            yield BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)
        yield from (Strict(), AfterValidator(self._check))


@dataclass(frozen=True)
class Flag(Setting):
    """True or false (1, 0 and 'yes' are not booleans here)."""

    words: str
    rule: str = "be true or false"

    def span_text(self) -> str:
        return "true or false"

    def __iter__(self) -> Iterator[Any]:
        yield Strict()


@dataclass(frozen=True)
class Sizes(Setting):
    """A tuple of one to `longest` whole numbers, each from low to high (a list, or True for 1, is refused)."""

    longest: int
    low: int
    high: int
    words: str
    rule: str = ""

    def rule_text(self) -> str:
        return self.rule or f"be one to {self.longest} whole numbers, each from {self.low:,} to {self.high:,}"

    def span_text(self) -> str:
        return f"1 to {self.longest} sizes of {self.low:,} to {self.high:,}"

    def _check(self, value: Any) -> tuple[int, ...]:
        if not (isinstance(value, tuple) and 1 <= len(value) <= self.longest and all(
                type(v) is int and self.low <= v <= self.high for v in value)):
            raise ValueError("not sizes")  # error_sentence says the rule instead
        return value

    def __iter__(self) -> Iterator[Any]:
        yield PlainValidator(self._check)


@dataclass(frozen=True)
class Text(Setting):
    """Text of at most max_length characters."""

    max_length: int
    words: str
    rule: str = ""

    def rule_text(self) -> str:
        return self.rule or f"be text of at most {self.max_length:,} characters"

    def span_text(self) -> str:
        return f"up to {self.max_length:,} characters"

    def __iter__(self) -> Iterator[Any]:
        yield from (Strict(), at.MaxLen(self.max_length))


# ----------------------------------------------------------------------------- classes of settings
_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)


def settings(cls=None, /, **options):
    """@settings: a frozen pydantic dataclass (keyword construction, dataclasses.fields / replace / asdict,
    equality and hashing as usual) whose construction raises SettingError with one sentence."""
    def make(cls):
        cls = pydantic.dataclasses.dataclass(frozen=True, config=_CONFIG, **options)(cls)
        validate = cls.__init__
        names = [f.name for f in dataclasses.fields(cls)]

        @functools.wraps(validate)
        def __init__(self, *args, **kwargs):
            try:
                validate(self, *args, **kwargs)
            except ValidationError as e:
                raise SettingError(error_sentence(e, cls, given={**dict(zip(names, args)), **kwargs})) from None
        cls.__init__ = __init__
        return cls
    return make if cls is None else make(cls)


def build(cls, values: Mapping[str, Any], *, given: Mapping[str, Any] | None = None,
          name: Callable[[str], str] = str, error: type[ValueError] = SettingError):
    """An instance of a @settings class from a mapping, or `error` with one sentence in which each setting is
    called name(key) (e.g. the file and table it came from). given: the values as the person wrote them, to
    quote instead of the converted ones (an environment variable's text)."""
    try:
        return _adapter(cls).validate_python(dict(values))
    except ValidationError as e:
        raise error(error_sentence(e, cls, given={**values, **(given or {})}, name=name)) from None


@functools.cache
def _adapter(cls) -> TypeAdapter:
    return TypeAdapter(cls)


def setting_of(cls, key: str) -> Setting | None:
    """The Setting (words, rule_text, span_text) declared for a field of a pydantic dataclass or model."""
    info = getattr(cls, "__pydantic_fields__", {}).get(key)
    return None if info is None else next((m for m in info.metadata if isinstance(m, Setting)), None)


# ----------------------------------------------------------------------------- the sentence
def error_sentence(error: ValidationError, schema: type | None = None, *, given: Mapping[str, Any] | None = None,
                   name: Callable[[str], str] = str) -> str:
    """One sentence for pydantic's first complaint about a value of `schema` (a pydantic dataclass or model):
    '<setting> (<words>) must <rule>; got <value>.', and '(and N more problems)' when other settings are bad too.
    given: the input mapping, to quote a whole setting when pydantic complains about one item of it.
    name(key): how a top-level setting is called (default: its key)."""
    problems = [p for p in error.errors(include_url=False) if p["type"] != "default_factory_not_called"]
    if not problems:
        return "the settings are not valid."
    sentence = _sentence(_merge_union(problems), schema, given or {}, name)
    more = len({p["loc"][:1] for p in problems}) - 1
    if more > 0:
        sentence = f"{sentence[:-1]} (and {more} more problem{'s' * (more > 1)})."
    return sentence


def one_line(text: str, limit: int = 600) -> str:
    """Text as one line (newlines and runs of spaces become one space) of at most `limit` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def one_sentence(text: str, limit: int = 600) -> str:
    """Text as one line of at most `limit` characters that ends with a full stop."""
    text = one_line(text, limit)
    return text if text.endswith((".", "…", "?", "!")) else text + "."


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """A value as a sentence shows it: its repr, cut to about `limit` characters, with the length of a long
    text or list said in words (a 50 MB string stays a short sentence)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int) and value.bit_length() > 3 * limit:
        return f"a number of about {int(value.bit_length() * math.log10(2)) + 1:,} digits"
    if isinstance(value, str) and len(value) > limit:
        shown = repr(value[:limit])
        return f"{shown[:-1]}…{shown[-1]} ({len(value):,} characters)"
    shown = _REPR.repr(value)
    cut = len(shown) > limit
    if cut:
        shown = shown[:limit - 1] + "…"
    if isinstance(value, (list, tuple, dict, set)) and (cut or len(value) > _REPR.maxlist):
        shown += f" ({len(value):,} item{'s' * (len(value) != 1)})"
    return shown


_REPR = reprlib.Repr()   # a bounded repr: long texts and lists are abbreviated before they are built
_REPR.maxstring = _REPR.maxother = MAX_QUOTE
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 40
_REPR.maxlevel = 3


def _sentence(problem: dict, schema, given: Mapping[str, Any], name: Callable[[str], str]) -> str:
    loc, kind, ctx = tuple(problem.get("loc", ())), problem["type"], problem.get("ctx") or {}
    inner = ctx.get("error")
    words = str(inner) if inner is not None else problem.get("msg", "")
    if kind == "value_error" and (not loc or isinstance(inner, SettingError)):
        return one_sentence(words)  # already a sentence: a check across settings, or a nested config's
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        owner = getattr(schema, "__name__", "")
        return f"{owner + ' has' if owner else 'there is'} no setting named {quote(loc[-1])}."
    a_key = loc[-1:] == ("[key]",)  # pydantic's place for a mapping's bad key; the key is then the value quoted
    if a_key:
        loc = loc[:-2]
    depth, setting = (0, None) if a_key else _field(schema, loc)
    subject = ("a key of " if a_key else "") + name(_path(loc[:depth] if setting else loc) or "the value")
    if setting and setting.words:
        subject += f" ({setting.words})"
    if kind in ("missing", "missing_argument"):
        return f"{subject} is missing."
    if kind == "value_error" and not setting:  # a validator's own words
        return one_sentence(f"{subject}: {words}")
    rule = setting.rule_text() if setting else _rule(kind, ctx, problem.get("msg", ""))
    # the setting as given: a whole tuple rather than its bad item, an environment variable's text
    as_given = setting is not None and depth == 1 and loc[0] in given
    return f"{subject} must {rule}; got {quote(given[loc[0]] if as_given else problem.get('input'))}."


def _path(loc: tuple) -> str:
    """'history.loss', 'metrics.q1.nll': where a value is, each part cut to 40 characters (a key can be hostile)."""
    return ".".join(str(p) if len(str(p)) <= 40 else str(p)[:39] + "…" for p in loc)


def _merge_union(problems: list[dict]) -> dict:
    """The first problem; when it is one member's complaint about a union (int | float | dict, each a loc ending
    in a type tag such as 'constrained-int'), one problem at the union's place whose rule lists every member."""
    first = problems[0]
    loc = tuple(first.get("loc", ()))
    if not loc:
        return first
    members = [p for p in problems if len(p["loc"]) == len(loc) and tuple(p["loc"][:-1]) == loc[:-1]
               and p.get("input") is first.get("input") and _is_tag(p["loc"][-1])]
    if len(members) < 2:
        return first
    wanted: list[str] = []
    for p in members:
        rule = _rule(p["type"], p.get("ctx") or {}, p.get("msg", "")).removeprefix("be ")
        if rule not in wanted:
            wanted.append(rule)
    if "a number" in wanted and "a whole number" in wanted:
        wanted.remove("a whole number")
    return {"type": "union", "loc": loc[:-1], "input": first.get("input"),
            "ctx": {"rule": "be " + " or ".join(", ".join(wanted).rsplit(", ", 1))}}


def _is_tag(part) -> bool:
    """A union member's tag in an error's loc ('int', 'constrained-int', 'dict[str,...]'), not a key."""
    return isinstance(part, str) and (part in ("int", "float", "str", "bool", "bytes", "none")
                                      or any(c in part for c in "-[("))


def _field(schema, loc: tuple) -> tuple[int, Setting | None]:
    """How many leading parts of `loc` name fields of `schema` (and of the dataclasses in it), and the Setting
    of the deepest one."""
    depth, setting, cls = 0, None, schema
    for part in loc:
        fields = getattr(cls, "__pydantic_fields__", None)
        if not isinstance(part, str) or not fields or part not in fields:
            break
        depth += 1
        setting = setting_of(cls, part)  # None for a field without declared words: pydantic's complaint then
        cls = fields[part].annotation
    return depth, setting


_RULES = {  # pydantic's error type -> what the value must do, for a field without a declared rule
    "int_type": "be a whole number", "int_parsing": "be a whole number", "int_from_float": "be a whole number",
    "float_type": "be a number", "float_parsing": "be a number", "finite_number": "be a finite number",
    "bool_type": "be true or false", "bool_parsing": "be true or false", "string_type": "be text",
    "dict_type": "be a mapping", "list_type": "be a list", "tuple_type": "be a list",
    "dataclass_type": "be a mapping", "dataclass_exact_type": "be a mapping", "model_type": "be a mapping",
    "none_required": "be empty (null)",
}


def _rule(kind: str, ctx: dict, msg: str) -> str:
    if kind == "union":
        return ctx["rule"]
    if kind in _RULES:
        return _RULES[kind]
    bound = {"greater_than_equal": ("be at least", "ge"), "greater_than": ("be more than", "gt"),
             "less_than_equal": ("be at most", "le"), "less_than": ("be less than", "lt")}.get(kind)
    if bound:
        return f"{bound[0]} {_number(ctx.get(bound[1]))}"
    if kind == "string_too_long":
        return f"be text of at most {ctx.get('max_length', 0):,} characters"
    if kind == "string_too_short":
        return f"be text of at least {ctx.get('min_length', 0):,} characters"
    if kind == "too_long":
        return f"have at most {ctx.get('max_length', 0):,} items"
    if kind == "too_short":
        return f"have at least {ctx.get('min_length', 0):,} items"
    if kind == "literal_error":
        return f"be {ctx.get('expected', 'one of the allowed values')}"
    text = " ".join(str(msg).split())
    return text.removeprefix("Input should ") if text.startswith("Input should ") else f"be valid ({text})"


def _number(x) -> str:
    """A bound as a sentence shows it: 1e-06, 0.9, 1e9, 600."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int) or (x.is_integer() and abs(x) < 1e6):
        return str(int(x)) if abs(x) < 1e6 else f"{x:.0e}".replace("e+0", "e").replace("e+", "e")
    return f"{x:g}".replace("e+0", "e").replace("e+", "e")
