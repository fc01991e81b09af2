"""Templates: what a template renders to, and the one line each mistake gets."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from secretd.errors import NotInStore, UsageError
from secretd.templates import Rendered, Use, parse_delimiters, render, uses

SECRETS = {"db_password": b"s3cr3t-canary", "vault:secret/app#key": b"v4ult", "tls": b"\xff\x00k"}
CONFIGS = {"nginx": b"worker_processes 2;\n", "logo": b"\x89PNG"}
INTERNALS = "templates may not reach Python internals or change values"
KNOWN = "templates know secret('NAME'), config('NAME'), env('VAR') and run.KEY"


def secret(name: str) -> bytes:
    if name not in SECRETS:
        raise NotInStore(name)
    return SECRETS[name]


def config(name: str) -> bytes:
    return CONFIGS[name]


Render = Callable[..., Rendered]


@pytest.fixture
def rendered(tmp_path: Path) -> Render:
    def run(text: str, **kwargs: object) -> Rendered:
        path = tmp_path / "app.tmpl"
        path.write_text(text)
        kwargs.setdefault("env", {"REGION": "eu-west-1"})
        kwargs.setdefault("run", {"name": "web"})
        return render(path, secret=secret, config=config, **kwargs)  # type: ignore[arg-type]

    return run


def error(rendered: Render, text: str, **kwargs: object) -> str:
    with pytest.raises(UsageError) as caught:
        rendered(text, **kwargs)
    assert caught.value.exit_code == 2
    exc = caught.value
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)
    line = caught.value.line()
    assert "\n" not in line and "s3cr3t" not in line and "v4ult" not in line
    return line.removeprefix(f"template '{Path.cwd() / 'app.tmpl'}'")


def test_secrets_configs_env_and_run_render_in_place(rendered: Render) -> None:
    text = (
        "password: {{ secret('db_password') }}\n"
        "key: {{ secret('vault:secret/app#key') }}\n"
        "{{ config('nginx') }}"
        "region: {{ env('REGION') }} zone: {{ env('ZONE', 'a') }}\n"
        "name: {{ run.name }}\n"
    )
    result = rendered(text)
    assert result.data == (
        b"password: s3cr3t-canary\nkey: v4ult\nworker_processes 2;\n"
        b"region: eu-west-1 zone: a\nname: web\n"
    )
    assert result.reads_secrets


def test_a_template_without_secret_is_not_a_secret(rendered: Render) -> None:
    assert rendered("{{ config('nginx') }}").reads_secrets is False
    assert rendered("{% if false %}{{ secret('db_password') }}{% endif %}").reads_secrets


def test_the_repr_hides_the_rendered_data(rendered: Render) -> None:
    result = rendered("{{ secret('db_password') }}")
    assert repr(result) == "Rendered(reads_secrets=True, data=<redacted 13 bytes>)"
    assert "s3cr3t" not in str(result)


def test_filters_b64encode_tojson_indent(rendered: Render) -> None:
    result = rendered(
        "{{ secret('tls') | b64encode }} {{ 'é' | b64encode }}\n"
        "{{ {'b': secret('db_password'), 'a': [1, '<x>']} | tojson }}\n"
        "k:\n  {{ (config('nginx') ~ 'b: 2') | indent(2) }}"
    )
    b64, json_line, rest = result.data.decode().split("\n", 2)
    tls, text = (base64.b64encode(value).decode() for value in (SECRETS["tls"], "é".encode()))
    assert b64 == f"{tls} {text}"
    assert json.loads(json_line) == {"a": [1, "<x>"], "b": "s3cr3t-canary"}
    assert json_line == '{"a": [1, "<x>"], "b": "s3cr3t-canary"}'
    assert rest == "k:\n  worker_processes 2;\n  b: 2"


def test_delimiters_leave_go_and_helm_braces_alone(rendered: Render) -> None:
    text = 'pw: [[ secret("db_password") ]]\nname: {{ .Values.name }}\n{{- if .x }}\n'
    result = rendered(text, delimiters=("[[", "]]"))
    assert result.data == b"pw: s3cr3t-canary\nname: {{ .Values.name }}\n{{- if .x }}\n"
    assert parse_delimiters("[[ ]]") == ("[[", "]]")


@pytest.mark.parametrize("text", ["[[", "[[ [[", "{% %}", "a b c", ""])
def test_bad_delimiters_are_one_usage_line(text: str) -> None:
    with pytest.raises(UsageError, match="invalid template delimiters"):
        parse_delimiters(text)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("a\n{{ db_pasword }}", ", line 2: 'db_pasword' is undefined: " + KNOWN),
        ("{{ secrets('x') }}", ", line 1: 'secrets' is undefined: " + KNOWN),
        ("\n\n{{ run.image }}", ", line 3: 'image' is undefined: " + KNOWN),
        ("{{ run[secret('db_password')] }}", ", line 1: (a computed name) is undefined: " + KNOWN),
        (
            "{{ secret(secret('db_password')) }}",
            ", line 1: secret (a computed name) cannot be read (NotInStore)",
        ),
        (
            "{{ env(secret('db_password')) }}",
            ", line 1: environment variable (a computed name) is not set: "
            "set it, or give a default: env(NAME, 'default')",
        ),
        (
            "{{ secret('t' ~ 'ls') | tojson }}",
            ", line 1: secret (a computed name) is not UTF-8 text: pass it through b64encode",
        ),
        (
            "{% for x in y %}",
            ", line 1: Unexpected end of template (expected 'endfor' or 'else'): "
            "see docs/configs.md#templates",
        ),
        (
            "x\n{{ 'a' | nofilter }}",
            ", line 2: No filter named 'nofilter': see docs/configs.md#templates",
        ),
        (
            "{{ secret('tls') }}",
            ", line 1: secret 'tls' is not UTF-8 text: pass it through b64encode",
        ),
        (
            "{{ secret('tls') | tojson }}",
            ", line 1: secret 'tls' is not UTF-8 text: pass it through b64encode",
        ),
        ("x\n{{ {'a': [nope]} | tojson }}", ", line 2: 'nope' is undefined: " + KNOWN),
        ("{{ secret | tojson }}", ", line 1: a function value cannot be written as JSON"),
        (
            "{{ config('logo') }}",
            ", line 1: config 'logo' is not UTF-8 text: pass it through b64encode",
        ),
        ("{{ secret(1) }}", ", line 1: secret() takes a name as a string: write secret('NAME')"),
        (
            "{{ env() }}",
            ", line 1: env() takes a name as a string: write env('NAME') or env('NAME', 'default')",
        ),
        (
            "{{ env('HOME_X') }}",
            ", line 1: environment variable 'HOME_X' is not set: "
            "set it, or give a default: env('HOME_X', 'default')",
        ),
        (
            "{% include 'other.tmpl' %}",
            ", line 1: {% include %} is not supported: a template is one file",
        ),
        (
            "{% extends 'base' %}",
            ", line 1: {% extends %} is not supported: a template is one file",
        ),
        ("\n{{ 1 / 0 }}", ", line 2: ZeroDivisionError while rendering"),
        ("{{ 'x' * 1000000 }}", ", line 1: a repetition longer than 100000 items"),
        ("{{ 2 ** 100000 }}", ", line 1: an exponent above 1000"),
        (
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            ", line 1: loops over more than 100000 range() items",
        ),
        (
            "{% for a in range(30000) %}{{ 'x' * 20 }}{% endfor %}",
            ": renders to 512000 bytes or more",
        ),
        (
            "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
            ", line 1: RecursionError while rendering",
        ),
        ("{{ lipsum(10000000) }}", ", line 1: 'lipsum' is undefined: " + KNOWN),
    ],
)
def test_each_mistake_is_one_line_naming_template_line_and_name(
    rendered: Render, text: str, line: str
) -> None:
    assert error(rendered, text) == line


@pytest.mark.parametrize(
    ("text", "attribute"),
    [
        ("{{ ''.__class__ }}", "__class__"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "__class__"),
        ("{{ secret.__globals__ }}", "__globals__"),
        ("{{ cycler.__init__.__globals__ }}", "__init__"),
        ("{{ run.__class__ }}", "__class__"),
        ("{{ '{0.__class__}'.format(1) }}", "__class__"),
        ("{{ (secret | attr('__globals__')) }}", "__globals__"),
        ("{% if ''.__class__ is defined %}leak{% endif %}", "__class__"),
        ("{{ run.update({'name': 'x'}) }}", "update"),
        ("{% set l = [] %}{{ l.append(1) }}", "append"),
    ],
)
def test_reaching_python_internals_is_refused(rendered: Render, text: str, attribute: str) -> None:
    assert error(rendered, text) == f", line 1: {attribute!r} is not allowed: {INTERNALS}"


def test_the_brokers_errors_pass_through_with_the_line(rendered: Render) -> None:
    with pytest.raises(NotInStore) as caught:
        rendered("ok\n{{ secret('nope') }}")
    assert caught.value.exit_code == NotInStore.exit_code
    assert (
        str(caught.value)
        == caught.value.line()
        == (
            f"template '{Path.cwd() / 'app.tmpl'}', line 2: secret 'nope' not found in the local "
            "store: create it: printf %s VALUE | secretd secret create nope -"
        )
    )


def test_unreadable_templates_are_usage_errors(tmp_path: Path) -> None:
    def attempt(path: Path) -> str:
        with pytest.raises(UsageError) as caught:
            render(path, secret=secret, config=config, env={}, run={})
        return caught.value.line()

    assert attempt(tmp_path / "missing") == (
        f"cannot read template '{tmp_path}/missing': No such file or directory"
    )
    assert (
        attempt(tmp_path)
        == f"cannot read template '{tmp_path}': it is a directory, not a regular file"
    )
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    assert attempt(tmp_path / "latin1") == (
        f"template '{tmp_path}/latin1' is not UTF-8 text (line 1): save it as UTF-8"
    )


def test_uses_lists_names_without_resolving_them(tmp_path: Path) -> None:
    path = tmp_path / "app.tmpl"
    path.write_text(
        "{{ secret('db_password') }} {{ secret('db_password') }}\n"
        "{{ config('nginx') }} {{ env('REGION', 'eu') }}\n"
        "{% set n = 'x' %}{{ secret(n) }} {{ run.name }} {{ run['id'] }}\n"
        "{% set s = secret %}\n"
    )
    assert uses(path) == [
        Use("secret", "db_password", 1),
        Use("config", "nginx", 2),
        Use("env", "REGION", 2),
        Use("secret", None, 3),
        Use("run", "name", 3),
        Use("run", "id", 3),
        Use("secret", None, 4),
    ]


def test_uses_finds_undefined_names_and_syntax_errors(tmp_path: Path) -> None:
    path = tmp_path / "app.tmpl"
    path.write_text("{% set ok = 1 %}{{ ok }}\n{{ secrte('x') }}")
    with pytest.raises(UsageError) as caught:
        uses(path)
    assert caught.value.line() == f"template '{path}', line 2: 'secrte' is undefined: {KNOWN}"
    path.write_text("{{ x }")
    with pytest.raises(UsageError, match=r"line 1: unexpected '}'"):
        uses(path)
