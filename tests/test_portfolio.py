"""Agency portfolios: the sandbox's model of representative access, discovery (`counters --clients`),
a wrong client login named as such, `counters: all`, lists that know their client, reports per client."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aioresponses import aioresponses

from bulk_enable import MetricaClient, Profile, SandboxThread, Verdict
from bulk_enable._config import ConfigError, load_config
from bulk_enable._demo import demo_profile
from bulk_enable._legend import STATUS_LEGEND, status_words
from bulk_enable._metrica import LOGIN_LIMIT
from bulk_enable._sandbox_profile import ProfileError
from bulk_enable._untrusted import MASK

from .conftest import TOKEN, SandboxFactory, cli, cli_env, read_report, run_against, statuses

CLIENTS = {"client-alpha": "700-704", "client-beta": "800-802"}
AGENCY: dict[str, Any] = {
    "counters": "1-5",
    "clients": CLIENTS,
    "represents": {"agency": ["client-alpha", "client-beta"]},
    "guests": {"client-beta": {702: "edit", 990: "view"}},  # 702 is client-alpha's own
    "ip_rps": 0,
}


def job_file(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    """A job file of `text`."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run_as_agency(box: SandboxThread, config: Path, report: Path, *extra: str) -> Any:
    """`run` against `box` with the agency's token in $TA (the variable the test configs name)."""
    return run_against(box, config, report, *extra, env=cli_env(TA=TOKEN))


def api(box: SandboxThread, path: str, token: str = TOKEN, method: str = "GET") -> tuple[int, Any]:
    """One request to the sandbox's API (path with its query): the status and the JSON body."""
    request = urllib.request.Request(
        f"{box.url}/management/v1{path}", method=method, headers={"Authorization": f"OAuth {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def listed(box: SandboxThread, ulogin: str | None = None, token: str = TOKEN) -> dict[int, tuple[str, str]]:
    """counter -> (permission, owner_login) of one login's listing."""
    status, body = api(box, "/counters" + (f"?ulogin={ulogin}" if ulogin else ""), token)
    assert status == 200, body
    return {c["id"]: (c["permission"], c["owner_login"]) for c in body["counters"]}


# --- the sandbox models representative access -------------------------------------------------------


def test_accounts_lists_the_represented_logins_in_the_documented_shape(
    sandbox_factory: SandboxFactory,
) -> None:
    """`GET /accounts`: {"accounts": [{"user_login", "created_at"}]}, only the token login's clients."""
    box = sandbox_factory(**AGENCY, tokens={TOKEN: "agency", "other": "loner"})
    status, body = api(box, "/accounts")
    assert status == 200 and [a["user_login"] for a in body["accounts"]] == ["client-alpha", "client-beta"]
    assert all(set(a) == {"user_login", "created_at"} for a in body["accounts"])
    assert api(box, "/accounts", "other") == (200, {"accounts": []})


def test_a_clients_listing_holds_guest_counters_and_one_counter_shows_under_two_logins(
    sandbox_factory: SandboxFactory,
) -> None:
    """Under ulogin a client's own counters are `own`; guests keep their owner and permission; 702 is
    both client-alpha's own and a guest of client-beta; the agency's own listing has neither."""
    box = sandbox_factory(**AGENCY)
    alpha, beta = listed(box, "client-alpha"), listed(box, "client-beta")
    assert alpha == dict.fromkeys(range(700, 705), ("own", "client-alpha"))
    assert beta[702] == ("edit", "client-alpha") and beta[990] == ("view", "someone-else")
    assert beta[800] == ("own", "client-beta") and set(beta) == {800, 801, 802, 702, 990}
    assert set(listed(box)) == {1, 2, 3, 4, 5}


@pytest.mark.parametrize(("kind", "status"), [("access_denied", 403), ("invalid_parameter", 400)])
def test_ulogin_is_honoured_only_for_represented_logins(
    sandbox_factory: SandboxFactory, kind: str, status: int
) -> None:
    """A login the token does not represent (the docs do not say how it is answered: both ways) is
    refused for listings and writes alike; the represented one and the token's own login work."""
    box = sandbox_factory(**AGENCY, tokens={TOKEN: "agency", "other": "loner"}, foreign_ulogin=kind)
    for path, method in (("/counters?ulogin=client-alfa", "GET"), ("/counters?ulogin=client-alpha", "GET")):
        answer = api(box, path, "other", method)
        assert answer[0] == status and answer[1]["errors"][0]["error_type"] == kind
    write = "/counter/700/offline_conversions/calls_extended_threshold?ulogin=client-alpha"
    assert api(box, write, "other", "POST")[0] == status
    assert api(box, write, TOKEN, "POST") == (200, {"success": True})
    assert api(box, "/counters?ulogin=agency")[0] == 200


@pytest.mark.parametrize(("counter", "status"), [(702, 200), (990, 403)])
def test_a_guest_counter_is_written_by_its_permission(
    sandbox_factory: SandboxFactory, counter: int, status: int
) -> None:
    """A guest `edit` counter can be changed under the client's ulogin; a guest `view` one is refused."""
    box = sandbox_factory(**AGENCY)
    path = f"/counter/{counter}/offline_conversions/calls_extended_threshold?ulogin=client-beta"
    assert api(box, path, method="POST")[0] == status


@pytest.mark.parametrize(
    ("method", "path"), [("PUT", "/accounts"), ("DELETE", "/account"), ("POST", "/accounts")]
)
def test_changing_representatives_is_recorded_and_refused(
    sandbox_factory: SandboxFactory, method: str, path: str
) -> None:
    """On Metrica a PUT on accounts revokes access: the sandbox refuses it and keeps a record."""
    box = sandbox_factory(**AGENCY)
    assert api(box, path, method=method)[0] == 403
    assert box.stats()["account_changes"] == [f"{method} /management/v1{path}"]
    assert [a["user_login"] for a in api(box, "/accounts")[1]["accounts"]] == ["client-alpha", "client-beta"]


def test_every_request_method_is_counted(sandbox_factory: SandboxFactory) -> None:
    """The stats count requests by HTTP method: a test can say "only GETs were sent"."""
    box = sandbox_factory(**AGENCY)
    api(box, "/accounts")
    api(box, "/counters?ulogin=client-alpha")
    api(box, "/counter/1/offline_conversions/calls_extended_threshold", method="POST")
    assert box.stats()["http_methods"] == {"GET": 2, "POST": 1}


def test_a_counter_added_later_is_listed(sandbox_factory: SandboxFactory) -> None:
    """A client's new site: its counter shows in the client's listing from then on."""
    box = sandbox_factory(**AGENCY)
    box.add_counter(705, "client-alpha")
    box.add_counter(6)
    assert 705 in listed(box, "client-alpha") and 6 in listed(box)


@pytest.mark.parametrize(
    ("setting", "shown"),
    [
        ({"foreign_ulogin": "ignore"}, "foreign_ulogin must be"),
        ({"guests": {"c": {1: "owner"}}}, "unknown behaviour(s): owner"),
        ({"guests": {"c": [1, 2]}}, "wrong type"),
    ],
)
def test_bad_portfolio_settings_are_refused(setting: dict[str, Any], shown: str) -> None:
    """A profile's portfolio settings are checked like the others."""
    with pytest.raises(ProfileError) as caught:
        Profile().updated(setting)
    assert shown in str(caught.value)


def test_the_demo_profile_is_a_two_client_agency() -> None:
    """The packaged demo sandbox: its login represents two clients, one guest counter is the other's."""
    profile = demo_profile()
    agency = profile.tokens["demo-token"]
    assert profile.represents[agency] == ["romashka-shop", "vector-b2b"]
    shared = set(profile.guests["romashka-shop"]) & set(profile.clients["vector-b2b"])
    assert shared == {41000505}


@pytest.mark.server
def test_the_demo_reaches_a_client_of_your_own_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo --config` with a client's ulogin: the demo's agency represents it, so the run goes through."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine.yaml").write_text(
        "accounts:\n"
        "  - {name: a, token_env: T, ulogin: client-q, counters: [7]}\n"
        "  - {name: b, token_env: T, ulogin: romashka-shop, counters: [41000400]}\n"
    )
    done = cli("demo", "--config", "mine.yaml", env=cli_env(T="unused"))
    assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "reports" / "mine.demo.csv") == {7: "enabled", 41000400: "enabled"}


# --- the client lists the represented logins -------------------------------------------------------

ACCOUNTS_URL = "https://api-metrika.yandex.net/management/v1/accounts"


async def accounts_answer(body: object, status: int = 200, ulogin: str | None = None) -> tuple[Any, ...]:
    """`list_accounts` answered with `body`: (answer, logins, the requests sent)."""
    async with aiohttp.ClientSession() as session:
        client = MetricaClient(session, "https://api-metrika.yandex.net", TOKEN, ulogin)
        with aioresponses() as m:
            text = body if isinstance(body, str) else json.dumps(body)
            m.get(f"{ACCOUNTS_URL}?ulogin={ulogin}" if ulogin else ACCOUNTS_URL, status=status, body=text)
            answer, logins = await client.list_accounts()
            sent = list(m.requests)
    return answer, logins, sent


async def test_represented_logins_are_read_once_each_and_made_safe() -> None:
    """Each `user_login` once, in order; other items skipped; a token scrubbed, controls escaped, capped."""
    body = {
        "accounts": [
            {"user_login": "client-alpha", "created_at": "2024-01-01T00:00:00Z"},
            {"user_login": "client-beta"},
            {"user_login": "client-alpha"},
            {"user_login": f"evil{TOKEN}"},
            {"user_login": "bell\x07"},
            {"user_login": "x" * 500},
            {"user_login": 5},
            {"user_login": ""},
            "client-gamma",
            None,
        ]
    }
    answer, logins, sent = await accounts_answer(body)
    assert answer.verdict is Verdict.DONE
    assert logins[:4] == ["client-alpha", "client-beta", f"evil{MASK}", "bell\\x07"]
    assert len(logins) == 5 and len(logins[4]) == LOGIN_LIMIT
    assert [method for method, _ in sent] == ["GET"]


@pytest.mark.parametrize("body", [[{"user_login": "a"}], {"accounts": "a,b"}, {"account": []}, "<html/>", ""])
async def test_an_answer_that_is_not_a_list_of_accounts_is_retried(body: object) -> None:
    """A 200 whose body is not {"accounts": [...]} is transient (`bad_accounts`), like a bad listing."""
    answer, logins, _ = await accounts_answer(body)
    assert (answer.verdict, answer.error_type, logins) == (Verdict.RETRY, "bad_accounts", [])


async def test_an_endless_list_of_accounts_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """More represented logins than any agency has: failed, not read into a config."""
    monkeypatch.setattr("bulk_enable._metrica.MAX_ACCOUNTS", 3)
    body = {"accounts": [{"user_login": f"c{i}"} for i in range(4)]}
    answer, logins, _ = await accounts_answer(body)
    assert (answer.verdict, answer.error_type, logins) == (Verdict.FAILED, "accounts_too_long", [])


async def test_a_refusal_of_the_accounts_list_is_an_answer() -> None:
    """An error answer comes back classified, with no logins."""
    body = {"errors": [{"error_type": "access_denied", "message": "no"}], "code": 403, "message": "no"}
    answer, logins, _ = await accounts_answer(body, 403, ulogin="client-x")
    assert (answer.verdict, answer.http_status, logins) == (Verdict.DENIED, 403, [])


# --- discovery: `counters --clients` ----------------------------------------------------------------

PORTFOLIO = {
    **AGENCY,
    "tokens": {TOKEN: "agency", "client-c-token": "client-c"},
    "clients": {**CLIENTS, "client-c": "900-902"},
    "fixed": {3: "read_only"},
}
TWO_TOKENS = cli_env(TA=TOKEN, TC="client-c-token")


def discover(box: SandboxThread, *extra: str, env: dict[str, str] = TWO_TOKENS) -> Any:
    """`counters --clients` with the agency's token and a client's own token."""
    return cli(
        "counters",
        "--clients",
        "--api-base",
        box.url,
        "--token-env",
        "TA",
        "--token-env",
        "TC",
        *extra,
        env=env,
    )


def test_the_whole_portfolio_is_discovered_with_gets_only_and_runs_as_written(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """Two tokens, two represented clients: one config (own, each client with its ulogin, the second
    token's own), discovery sends only GETs, and `run` enables every editable counter exactly once,
    each client's counters with its ulogin."""
    box = sandbox_factory(**PORTFOLIO)
    found = discover(box)
    assert found.returncode == 0, found.stderr
    stats = box.stats()
    assert set(stats["http_methods"]) == {"GET"} and stats["account_changes"] == []
    assert TOKEN not in found.stdout and "client-c-token" not in found.stdout
    data = yaml.safe_load(found.stdout)
    shape = [
        (a["name"], a["token_env"], a.get("ulogin"), [c["id"] for c in a["counters"]])
        for a in data["accounts"]
    ]
    assert shape == [
        ("ta", "TA", None, [1, 2, 4, 5]),
        ("client-alpha", "TA", "client-alpha", [700, 701, 702, 703, 704]),
        ("client-beta", "TA", "client-beta", [800, 801, 802]),
        ("tc", "TC", None, [900, 901, 902]),
    ]
    assert "- {id: 702, label: Counter 702 — site-702.example}  # also under client-beta" in found.stdout
    config = job_file(tmp_path, found.stdout, "portfolio.yaml")
    before = stats["ulogins"]
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000", env=TWO_TOKENS)
    assert done.returncode == 0, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"enabled"}
    stats = box.stats()
    assert stats["writes"] == {str(c): 1 for a in shape for c in a[3]}
    sent = {u: n - before.get(u, 0) for u, n in stats["ulogins"].items()}
    assert sent == {"client-alpha": 5, "client-beta": 3}


@pytest.mark.parametrize("source", ["--token-env", "--token-file"])
def test_a_logins_own_counters_are_named_after_the_login_whatever_holds_its_token(
    tmp_path: Path, sandbox_factory: SandboxFactory, source: str
) -> None:
    """The account of a token's own counters is named after the login that owns them, so discovering
    again with the token in a file (for cron) keeps the report's accounts as they were."""
    box = sandbox_factory(**{**PORTFOLIO, "tokens": {TOKEN: "agency", "zz-secret-9": "client-c"}})
    token_file = tmp_path / "tokens.d" / "c.token"
    token_file.parent.mkdir()
    token_file.write_text("zz-secret-9\n")
    token_file.chmod(0o600)
    given = ["--token-env", "TZ9"] if source == "--token-env" else ["--token-file", token_file]
    found = cli("counters", "--clients", "--api-base", box.url, *given, env=cli_env(TZ9="zz-secret-9"))
    assert found.returncode == 0, found.stderr
    assert [a["name"] for a in yaml.safe_load(found.stdout)["accounts"]] == ["client-c"]


def test_a_token_file_is_referred_to_by_its_path(tmp_path: Path, sandbox_factory: SandboxFactory) -> None:
    """A token from --token-file: its account says `token_file: PATH`; the token is not in the config."""
    box = sandbox_factory(**PORTFOLIO)
    token_file = tmp_path / "client-c.token"
    token_file.write_text("client-c-token\n")
    token_file.chmod(0o600)
    found = cli("counters", "--clients", "--api-base", box.url, "--token-file", token_file)
    assert found.returncode == 0, found.stderr
    assert "client-c-token" not in found.stdout
    assert yaml.safe_load(found.stdout)["accounts"] == [
        {
            "name": "client-c",
            "token_file": str(token_file),
            "counters": [{"id": c, "label": f"Counter {c} — site-{c}.example"} for c in (900, 901, 902)],
        }
    ]


def test_permission_widens_what_discovery_keeps(sandbox_factory: SandboxFactory) -> None:
    """--permission own,edit,view keeps the guest `view` counter and the read-only one too."""
    box = sandbox_factory(**PORTFOLIO)
    narrow, wide = discover(box), discover(box, "--permission", "own,edit,view")
    assert "# left out: 2 counters without permission own,edit" in narrow.stdout
    ids = [c["id"] for a in yaml.safe_load(wide.stdout)["accounts"] for c in a["counters"]]
    assert {3, 990} <= set(ids) and len(ids) == len(set(ids)) == 17


def test_a_token_given_twice_is_listed_once(sandbox_factory: SandboxFactory) -> None:
    """Two variables holding one token: one set of accounts, and a warning naming both."""
    box = sandbox_factory(**PORTFOLIO)
    found = discover(box, env=cli_env(TA=TOKEN, TC=TOKEN))
    assert found.returncode == 0, found.stderr
    assert "$TC holds the same token as $TA: listed once" in found.stderr
    assert [a["name"] for a in yaml.safe_load(found.stdout)["accounts"]] == [
        "ta",
        "client-alpha",
        "client-beta",
    ]


def test_a_client_reached_by_two_tokens_is_listed_under_the_first(sandbox_factory: SandboxFactory) -> None:
    """A client represented by two tokens: its counters once, and a comment where the second would be."""
    box = sandbox_factory(
        **{**PORTFOLIO, "represents": {"agency": ["client-alpha"], "client-c": ["client-alpha"]}}
    )
    found = discover(box)
    assert found.returncode == 0, found.stderr
    assert [a["name"] for a in yaml.safe_load(found.stdout)["accounts"]] == ["ta", "client-alpha", "tc"]
    assert (
        "  # client-alpha-2: also reached with the token in $TA: its counters are under client-alpha"
        in found.stdout
    )


def test_a_failed_discovery_writes_nothing(sandbox_factory: SandboxFactory) -> None:
    """A token the API refuses: exit 3, one line naming where the token came from, no partial config."""
    box = sandbox_factory(**PORTFOLIO, dead_tokens=["client-c-token"])
    found = discover(box)
    assert (found.returncode, found.stdout) == (3, "")
    assert "the token in $TC: its own counters: the token was refused" in found.stderr
    assert "client-c-token" not in found.stderr


@pytest.mark.parametrize(
    ("args", "env", "shown"),
    [
        (["--clients", "--ulogin", "x"], {}, "--clients lists every client login the token represents"),
        (
            ["--token-env", "TA", "--token-env", "TC"],
            {"TA": "a", "TC": "c"},
            "several tokens go with --clients",
        ),
        (["--clients", "--token-env", "NOPE"], {}, "--token-env NOPE: that environment variable is not set"),
        (
            ["--clients", "--token-env", "y0_AgAAAAB4x2kUAAAAsecretlookingtoken"],
            {},
            "looks like a token itself",
        ),
        (["--clients", "--token-env", "not-a-name"], {}, "give the NAME of an environment variable"),
    ],
)
def test_token_sources_are_checked_before_any_request(
    args: list[str], env: dict[str, str], shown: str
) -> None:
    """Mistakes in --token-env/--token-file/--ulogin with --clients: one line, exit 2, never the token."""
    done = cli("counters", "--api-base", "http://127.0.0.1:9", *args, env=cli_env(**env))
    assert done.returncode == 2 and shown in done.stderr, done.stderr
    assert "secretlookingtoken" not in done.stderr


# --- a wrong client login is named as such ----------------------------------------------------------

MISSPELT = (
    "accounts:\n  - {name: alpha, token_env: TA, ulogin: client-alfa, counters: [700, 701]}\n"
    "  - {name: beta, token_env: TA, ulogin: client-beta, counters: [800, 801]}\n"
)
RIGHT_LINE = (
    "client login client-alfa is not among the 2 client logins this token represents: "
    "did you mean client-alpha?"
)


@pytest.mark.parametrize("kind", ["access_denied", "invalid_parameter"])
@pytest.mark.parametrize("command", ["run", "check", "status"])
def test_a_misspelt_ulogin_is_named_with_the_close_ones(
    tmp_path: Path, sandbox_factory: SandboxFactory, kind: str, command: str
) -> None:
    """Whichever way Metrica refuses a ulogin the token does not represent, run, check and status say
    the client login is wrong and name the close one; the token is not blamed; the other client goes on."""
    box = sandbox_factory(**AGENCY, foreign_ulogin=kind)
    config = job_file(tmp_path, MISSPELT)
    report = tmp_path / f"{command}.csv"
    done = cli(command, config, "--report", report, "--api-base", box.url, env=cli_env(TA=TOKEN))
    assert done.returncode == 3, done.stderr
    assert "account alpha stopped after" in done.stdout and RIGHT_LINE in done.stdout
    assert "next: correct the client login" in done.stdout
    assert all(blame not in done.stdout for blame in ("metrika:write", "check the token", "new OAuth token"))
    rows = {int(r["counter_id"]): r for r in read_report(report)}
    assert {rows[c]["status"] for c in (700, 701)} == {"deferred"}
    assert all(
        RIGHT_LINE in rows[c]["message"] and rows[c]["error_type"] == "wrong_ulogin" for c in (700, 701)
    )
    assert {rows[c]["status"] for c in (800, 801)} == {
        "short" if command == "status" else "would_enable" if command == "check" else "enabled"
    }


@pytest.mark.parametrize("kind", ["access_denied", "invalid_parameter"])
def test_counters_for_a_misspelt_ulogin_names_it(sandbox_factory: SandboxFactory, kind: str) -> None:
    """`counters --ulogin client-alfa`: the client login is named as wrong, not the token."""
    box = sandbox_factory(**AGENCY, foreign_ulogin=kind)
    done = cli("counters", "--ulogin", "client-alfa", "--api-base", box.url)
    assert (done.returncode, done.stdout) == (3, "")
    assert RIGHT_LINE in done.stderr and "check the token" not in done.stderr


def test_a_token_that_represents_nobody_says_so(sandbox_factory: SandboxFactory) -> None:
    """A token whose login represents no one: the line says so, and what to use instead."""
    box = sandbox_factory(**AGENCY, tokens={TOKEN: "loner"})
    done = cli("counters", "--ulogin", "client-alpha", "--api-base", box.url)
    assert done.returncode == 3
    assert (
        "client login client-alpha: this token represents no client logins (use that client's own token)"
        in done.stderr
    )


def test_a_right_ulogin_with_refused_counters_is_not_called_wrong(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A represented client whose counters are refused: they fail as before (the ulogin is right),
    and the list of represented logins is asked once for the account, not once per counter (and
    counted in the summary's requests)."""
    box = sandbox_factory(**{**AGENCY, "fixed": {700: "read_only", 701: "read_only", 702: "read_only"}})
    config = job_file(tmp_path, "ulogin: client-alpha\ncounters: [700, 701, 702]\n")
    done = run_against(box, config, tmp_path / "r.csv", "--max-denied", "0")
    assert done.returncode == 1, done.stderr
    assert set(statuses(tmp_path / "r.csv").values()) == {"failed"} and "is not among" not in done.stdout
    assert box.stats()["requests"] == 3 + 1 and "(3 counters, 4 requests" in done.stdout


# --- counters that keep coming: `counters: all` -----------------------------------------------------

EVERY = (
    "accounts:\n"
    "  - {name: alpha, token_env: TA, ulogin: client-alpha, counters: all, exclude: [703]}\n"
    "  - {name: beta, token_env: TA, ulogin: client-beta, counters: [702, 800]}\n"
    "  - {name: own, token_env: TA, counters: [1, 2]}\n"
)


def test_a_daily_rerun_enables_each_new_counter_with_one_write(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`counters: all`: each run lists the account's editable counters (less `exclude:`, less 702, named
    under another account); a rerun after a client's new site sends exactly one write, touches nothing
    already done, and the summary names the new counter."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, EVERY, "every.yaml")
    report = tmp_path / "r.csv"
    first = run_as_agency(box, config, report, "--rps", "1000")
    assert first.returncode == 0, first.stderr
    rows = {int(r["counter_id"]): (r["account"], r["status"]) for r in read_report(report)}
    assert rows == {
        **dict.fromkeys((700, 701, 704), ("alpha", "enabled")),
        **dict.fromkeys((702, 800), ("beta", "enabled")),
        **dict.fromkeys((1, 2), ("own", "enabled")),
    }
    assert "counters: all listed 3 editable counters" in first.stdout
    box.add_counter(705, "client-alpha")
    before = box.stats()
    again = run_as_agency(box, config, report, "--rps", "1000")
    assert again.returncode == 0, again.stderr
    after = box.stats()
    assert after["write_requests"] - before["write_requests"] == 1 and after["writes"]["705"] == 1
    assert all(n == 1 for n in after["writes"].values())
    assert "new since the last run: 1 counter (705)" in again.stdout
    third = run_as_agency(box, config, report, "--rps", "1000")
    assert (
        "none is new since the last run" in third.stdout
        and box.stats()["write_requests"] == after["write_requests"]
    )


@pytest.mark.parametrize(("command", "status"), [("check", "would_enable"), ("status", "short")])
def test_check_and_status_list_counters_all_too(
    tmp_path: Path, sandbox_factory: SandboxFactory, command: str, status: str
) -> None:
    """`check` and `status` cover what `counters: all` lists at their start: the client's own and its guest
    `edit` counter, not the guest `view` one, less `exclude:`."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, "ulogin: client-beta\ncounters: all\nexclude: 801\n", "every.yaml")
    done = cli(command, config, "--report", tmp_path / "r.csv", "--api-base", box.url)
    assert done.returncode == 0, done.stderr
    assert statuses(tmp_path / "r.csv") == dict.fromkeys((800, 802, 702), status)


def test_a_counters_all_account_whose_listing_fails_stops_alone(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A `counters: all` account whose listing is refused (here: a misspelt ulogin) stops and says why;
    the others run."""
    box = sandbox_factory(**AGENCY)
    config = job_file(
        tmp_path,
        "accounts:\n"
        "  - {name: alpha, token_env: TA, ulogin: client-alfa, counters: all}\n"
        "  - {name: own, token_env: TA, counters: [1, 2]}\n",
    )
    done = run_as_agency(box, config, tmp_path / "r.csv")
    assert done.returncode == 3 and RIGHT_LINE in done.stdout
    assert statuses(tmp_path / "r.csv") == {1: "enabled", 2: "enabled"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("counters: all\n", [("default", None, None, True, set())]),
        ("ulogin: client-x\ncounters: All\nexclude: [5, 6]\n", [("default", None, "client-x", True, {5, 6})]),
        ("counters: all\nexclude: 7\n", [("default", None, None, True, {7})]),
        (
            "accounts:\n  - {name: a, token_env: T, ulogin: c, counters: all, exclude: [1]}\n"
            "  - {name: b, token_env: T, counters: [2]}\n",
            [("a", "T", "c", True, {1}), ("b", "T", None, False, set())],
        ),
    ],
)
def test_counters_all_loads(tmp_path: Path, text: str, expected: list[tuple[object, ...]]) -> None:
    """`counters: all` (any case), optionally with `exclude:` (a list or one ID), at the top or per
    account."""
    path = tmp_path / "job.yaml"
    path.write_text(text)
    config = load_config(path)
    assert [(a.name, a.token_env, a.ulogin, a.every, set(a.exclude)) for a in config.accounts] == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("counters: [1]\nexclude: [2]\n", "line 2: `exclude:` goes with `counters: all`"),
        (
            "exclude: [2]\naccounts:\n  - {name: a, token_env: T, counters: all}\n",
            "give `exclude:` inside each account",
        ),
        (
            "counters: all\nexclude: [abc, 007]\n",
            "line 2: counter ID must be a positive whole number, got 'abc'",
        ),
        ("counters: everything\n", "expected a list of counter IDs, or `all` for every editable one, got"),
    ],
)
def test_counters_all_mistakes_are_refused(tmp_path: Path, text: str, shown: str) -> None:
    """`exclude:` without `counters: all`, in the wrong place, or with bad IDs: refused on its line."""
    path = tmp_path / "job.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert shown in str(caught.value)


# --- lists that know their client -------------------------------------------------------------------


@pytest.mark.parametrize("header", ["ulogin", "Client", "Логин"])
def test_a_csv_with_a_ulogin_column_runs_each_row_for_its_client(
    tmp_path: Path, sandbox_factory: SandboxFactory, header: str
) -> None:
    """An Excel list (Windows-1251, `;`) with a client-login column: each row acts for its client, an
    empty cell for the token's own login; each client is an account of the report."""
    box = sandbox_factory(**AGENCY)
    config = tmp_path / "excel1251.csv"
    config.write_bytes(
        f"Счётчик;{header};Название\n700;client-alpha;Ромашка\n1;;Своё\n800;client-beta;\n".encode("cp1251")
    )
    done = run_against(box, config, tmp_path / "r.csv", "--rps", "1000")
    assert done.returncode == 0, done.stderr
    rows = [(r["counter_id"], r["label"], r["account"], r["status"]) for r in read_report(tmp_path / "r.csv")]
    assert sorted(rows) == [
        ("1", "Своё", "default", "enabled"),
        ("700", "Ромашка", "client-alpha", "enabled"),
        ("800", "", "client-beta", "enabled"),
    ]
    assert box.stats()["ulogins"] == {"client-alpha": 1, "client-beta": 1}


def test_two_columns_of_id_and_ulogin_take_no_label(tmp_path: Path) -> None:
    """`counter_id,ulogin`: the second column is the client login, not a label."""
    path = tmp_path / "two.csv"
    path.write_text("counter_id,ulogin\n5,client-x\n6,client-x\n")
    config = load_config(path)
    assert [(a.name, a.ulogin, [(c.id, c.label) for c in a.counters]) for a in config.accounts] == [
        ("client-x", "client-x", [(5, ""), (6, "")])
    ]


def test_a_bad_client_login_cell_is_refused_on_its_line(tmp_path: Path) -> None:
    """A ulogin cell that is not a Yandex login: refused, naming the line and the value."""
    path = tmp_path / "bad.csv"
    path.write_text("id,ulogin\n5,client x\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert f"{path}: line 2: ulogin 'client x' is not a Yandex login" in str(caught.value)


@pytest.mark.parametrize(
    ("command", "status"), [("run", "enabled"), ("check", "would_enable"), ("status", "short")]
)
def test_ulogin_option_makes_a_plain_list_a_clients(
    tmp_path: Path, sandbox_factory: SandboxFactory, command: str, status: str
) -> None:
    """`--ulogin LOGIN` for a .txt of IDs: every request acts for that client; the report's account is it."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, "700\n701\n", "alpha.txt")
    report = tmp_path / "r.csv"
    done = cli(command, config, "--ulogin", "client-alpha", "--report", report, "--api-base", box.url)
    assert done.returncode == 0, done.stderr
    assert {(r["account"], r["status"]) for r in read_report(report)} == {("client-alpha", status)}
    assert box.stats()["ulogins"]["client-alpha"] >= 1


def test_ulogin_option_with_a_config_that_names_logins_is_refused(tmp_path: Path) -> None:
    """--ulogin on a config that says its own client logins: one line, exit 2, nothing sent."""
    config = job_file(tmp_path, "ulogin: client-beta\ncounters: [1]\n")
    done = cli("check", config, "--ulogin", "client-alpha", "--api-base", "http://127.0.0.1:9")
    assert done.returncode == 2 and "--ulogin is for a plain list of IDs" in done.stderr


def test_a_plan_of_a_csv_points_at_what_a_csv_can_hold(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """not_found rows of a CSV plan advise a ulogin column or --ulogin, not a YAML key a CSV cannot hold."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, "counter_id\n700\n", "list.csv")
    done = cli("check", config, "--report", tmp_path / "p.csv", "--api-base", box.url)
    assert "for a client's counters add a ulogin column or pass --ulogin LOGIN" in done.stdout
    assert "--ulogin LOGIN" in read_report(tmp_path / "p.csv")[0]["message"]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "ulogin: client-beta\ncounters: [990]\n",
            "next: read_only counters cannot be changed with this token: edit rights for the token's login",
        ),
        ("counters: [990]\n", "for a client's counters add `ulogin:` to the config"),
    ],
    ids=["its ulogin given", "no ulogin"],
)
def test_a_plan_advises_a_ulogin_only_where_none_is_given(
    tmp_path: Path, sandbox_factory: SandboxFactory, text: str, shown: str
) -> None:
    """A guest counter the client's login may only view: with its ulogin already in the config, the
    next step is edit rights, not the ulogin it has."""
    box = sandbox_factory(**AGENCY)
    done = cli(
        "check", job_file(tmp_path, text), "--api-base", box.url, env=cli_env(YANDEX_METRICA_TOKEN=TOKEN)
    )
    assert shown in done.stdout, done.stdout


# --- a report per client ----------------------------------------------------------------------------

TWO_CLIENTS = (
    "accounts:\n"
    "  - {name: alpha, token_env: TA, ulogin: client-alpha, counters: [700, 701, 702]}\n"
    "  - {name: beta, token_env: TA, ulogin: client-beta, counters: [800, 801, 990]}\n"
)


def workbook(path: Path) -> Any:
    import openpyxl

    return openpyxl.load_workbook(path)


def charts(path: Path) -> list[str]:
    """The native charts a workbook file holds (their parts in the zip)."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return [n for n in z.namelist() if n.startswith("xl/charts/chart")]


def sheet_rows(book: Any, name: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in book[name].iter_rows(values_only=True)]


@pytest.fixture
def two_client_report(tmp_path: Path, sandbox_factory: SandboxFactory) -> Path:
    """A run of two clients (990 is a guest `view` counter: it fails) into a CSV report."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, TWO_CLIENTS)
    report = tmp_path / "job.csv"
    done = run_as_agency(box, config, report, "--max-denied", "0")
    assert done.returncode == 1, done.stderr
    return report


def test_report_by_account_writes_one_workbook_per_client(tmp_path: Path, two_client_report: Path) -> None:
    """`report --by-account`: a workbook per account, only its rows, a Summary sheet (counts per status,
    a native chart) that it opens on; times in UTC by default; no token needed."""
    folder = tmp_path / "clients"
    done = cli("report", two_client_report, "--by-account", folder, env=cli_env(YANDEX_METRICA_TOKEN=""))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["alpha.xlsx", "beta.xlsx"]
    utc = {r["counter_id"]: r["finished_at"] for r in read_report(two_client_report)}
    for name, ids, counts in (
        ("alpha", ["700", "701", "702"], (3, 0)),
        ("beta", ["800", "801", "990"], (2, 1)),
    ):
        path = folder / f"{name}.xlsx"
        book = workbook(path)
        assert (
            book.sheetnames == ["Report", "Statuses", "Columns", "Summary"] and book.active.title == "Summary"
        )
        rows = read_report(path)
        assert [r["counter_id"] for r in rows] == ids and {r["account"] for r in rows} == {name}
        assert all(r["finished_at"].replace(" ", "T") + "Z" == utc[r["counter_id"]] for r in rows)
        summary = sheet_rows(book, "Summary")
        enabled, failed = counts
        assert summary[0][:2] == ("Account", "enabled now (enabled)")
        assert summary[1][0] == name and summary[1][1] == enabled and summary[1][-1] == 3
        assert (summary[1][2] if failed else None) == (failed or None)
        assert len(book["Summary"]._charts) == 1 and charts(path) == ["xl/charts/chart1.xml"]


def test_report_by_account_in_russian_and_moscow_time(tmp_path: Path, two_client_report: Path) -> None:
    """--lang ru (in any case): Russian sheet names, headers and summary words; --tz Europe/Moscow:
    times three hours ahead of the journal's UTC, and the Summary says which zone."""
    folder = tmp_path / "ru"
    done = cli("report", two_client_report, "--by-account", folder, "--lang", "RU", "--tz", "Europe/Moscow")
    assert done.returncode == 0, done.stderr
    book = workbook(folder / "alpha.xlsx")
    assert book.sheetnames == ["Отчёт", "Статусы", "Столбцы", "Сводка"]
    report = sheet_rows(book, "Отчёт")
    assert report[0][:4] == ("Счётчик", "Подпись", "Аккаунт", "Статус") and report[0][-1] == "Обработан"
    assert report[1][3] == "включено сейчас (enabled)"
    utc = {int(r["counter_id"]): r["finished_at"] for r in read_report(two_client_report)}
    for line in report[1:]:
        moscow = dt.datetime.fromisoformat(utc[line[0]].replace("Z", "")) + dt.timedelta(hours=3)
        assert line[-1] == moscow
    summary = sheet_rows(book, "Сводка")
    assert summary[0] == ("Аккаунт", "включено сейчас (enabled)", "Всего")
    assert summary[2] == ("Все аккаунты", 3, 3)
    assert ("Время указано в поясе Europe/Moscow", None, None) in summary
    assert len(book["Сводка"]._charts) == 1
    assert "Europe/Moscow" in str(sheet_rows(book, "Столбцы")[-1])
    statuses_sheet = sheet_rows(book, "Статусы")
    assert statuses_sheet[0] == ("Статус", "значение", "meaning")  # Russian first, English beside it
    code, english, russian = STATUS_LEGEND[0]
    assert statuses_sheet[1] == (status_words(code, "ru"), russian, english)  # as the report's cells read
    columns = sheet_rows(book, "Столбцы")
    assert columns[0] == ("Столбец", "значение", "meaning")
    assert columns[1][0] == "Счётчик (counter_id)"  # as the report's header reads, and the CSV's code
    assert all("Statuses" not in str(row) for row in columns)  # the sheet is Статусы here


def test_the_jobs_own_workbook_has_a_summary_row_per_account(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A run into an .xlsx report: its Summary sheet has a row per account, the totals and a chart."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, TWO_CLIENTS)
    report = tmp_path / "job.xlsx"
    run_as_agency(box, config, report, "--max-denied", "0")
    book = workbook(report)
    summary = sheet_rows(book, "Summary")
    assert summary[0] == ("Account", "включено сейчас (enabled)", "ошибка: см. сообщение (failed)", "Total")
    assert summary[1:4] == [("alpha", 3, 0, 3), ("beta", 2, 1, 3), ("All accounts", 5, 1, 6)]
    assert charts(report) == ["xl/charts/chart1.xml"] and book.active.title == "Report"


def test_a_status_summary_gives_the_day_the_last_window_is_full(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A `status` report's Summary: per account, the day its last growing window reaches 21 days."""
    box = sandbox_factory(**AGENCY, enabled_days_ago={700: 5, 701: 10, 800: 3})
    config = job_file(tmp_path, TWO_CLIENTS)
    report = tmp_path / "job.status.csv"
    done = cli("status", config, "--report", report, "--api-base", box.url, env=cli_env(TA=TOKEN))
    assert done.returncode in (0, 1), done.stderr
    folder = tmp_path / "clients"
    assert cli("report", report, "--by-account", folder).returncode == 0
    today = dt.datetime.now(dt.UTC).date()
    book = workbook(folder / "alpha.xlsx")
    summary = sheet_rows(book, "Summary")
    assert summary[0][-1] == "Last window full on"
    assert summary[1][-1] == dt.datetime.combine(today + dt.timedelta(days=16), dt.time())


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("counters: [1, 2]\n", "save those IDs as short.txt and `bulk-enable run short.txt`"),
        (TWO_CLIENTS, "run a copy of job.yaml that keeps only those counters with their accounts' ulogin"),
        ("ulogin: client-alpha\ncounters: [700, 701]\n", "run a copy of job.yaml that keeps only those"),
        (
            "accounts:\n  - {name: default, token_env: TA, ulogin: client-alpha, counters: [700, 701]}\n",
            "run a copy of job.yaml that keeps only those",
        ),
    ],
    ids=["plain", "clients", "top-level ulogin", "an account named default"],
)
def test_short_windows_of_clients_are_sent_again_with_their_ulogin(
    tmp_path: Path, sandbox_factory: SandboxFactory, text: str, shown: str
) -> None:
    """`status` finds short windows: the next step for a plain list is a list of the IDs; for a client's
    counters it keeps them under their accounts, since a bare ID without its ulogin would fail."""
    box = sandbox_factory(**AGENCY)
    done = cli("status", job_file(tmp_path, text), "--api-base", box.url, env=cli_env(TA=TOKEN))
    assert done.returncode == 0, done.stderr
    assert shown in done.stdout and ("short.txt" in done.stdout) is text.startswith("counters:")


def test_short_windows_of_a_plain_list_run_with_ulogin_keep_it(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A plain list run with --ulogin: the short IDs go in short.txt, run with the same --ulogin."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, "700\n701\n", "ids.txt")
    done = cli("status", config, "--ulogin", "client-alpha", "--api-base", box.url, env=cli_env(TA=TOKEN))
    assert done.returncode == 0, done.stderr
    assert "save those IDs as short.txt and run it with the same --ulogin" in done.stdout, done.stdout


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--by-account", "out", "--tz", "Mars/Olympus"], "--tz 'Mars/Olympus' is not a time zone name"),
        (["--lang", "ru"], "--lang and --tz go with --by-account FOLDER"),
        (["--by-account", "out", "--as", "x.xlsx"], "--by-account writes a workbook per account"),
        (["--by-account", "out", "--lang", "de"], "unknown --lang 'de' (choose from en, ru)"),
    ],
)
def test_report_by_account_mistakes_are_one_line(
    tmp_path: Path, two_client_report: Path, args: list[str], shown: str
) -> None:
    """Mistakes with --by-account, --lang and --tz: one line, exit 2, nothing written."""
    done = cli(
        "report", two_client_report, *[str(tmp_path / a) if a in ("out", "x.xlsx") else a for a in args]
    )
    assert done.returncode == 2 and shown in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


def test_account_names_become_safe_unique_file_names(tmp_path: Path) -> None:
    """Account names with slashes, dots or only case to tell them apart: safe, distinct file names."""
    from bulk_enable._model import Command, Counter, Job, Row, Status
    from bulk_enable._report import ReportFile
    from bulk_enable._workbook import Look, write_by_account

    report = tmp_path / "r.csv"
    with ReportFile(report, Command.RUN, Job()) as file:
        counters = [
            Counter(1, "", "../etc/x"),
            Counter(2, "", "Shop"),
            Counter(3, "", "shop"),
            Counter(4, "", ".."),
        ]
        file.begin(counters, lambda c: Row.of(c, Status.ENABLED))
        file.finish()
    written = write_by_account(report, tmp_path / "out", Look("en"))
    assert [p.name for p, _ in written] == ["etc_x.xlsx", "Shop.xlsx", "shop-2.xlsx", "account.xlsx"]
    assert all(p.parent == tmp_path / "out" for p, _ in written)


def test_a_client_login_typed_in_capitals_reaches_its_client(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """`Client-Alpha` in an Excel column is the login client-alpha (Yandex logins ignore case)."""
    box = sandbox_factory(**AGENCY)
    config = job_file(tmp_path, "counter_id;логин\n701;Client-Alpha\n", name="excel.csv")
    done = run_against(box, config, tmp_path / "r.csv")
    assert done.returncode == 0, done.stdout
    assert statuses(tmp_path / "r.csv") == {701: "enabled"}


def test_a_failure_for_good_under_a_wrong_client_is_asked_again_once_the_client_is_right(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """A counter refused under one account is a new question once the config puts it under another:
    the rerun sends it without --retry-failed; the same account's failure still waits for a human."""
    box = sandbox_factory(**AGENCY)
    report = tmp_path / "r.csv"
    config = job_file(tmp_path, "counter_id;ulogin\n701;client-beta\n", name="list.csv")
    first = run_against(box, config, report, "--max-failures", "0")
    assert statuses(report) == {701: "failed"} and first.returncode == 1, first.stdout
    again = run_against(box, config, report)
    assert box.stats()["write_requests"] == 1 and again.returncode == 1  # still waiting for a human
    config.write_text("counter_id;ulogin\n701;client-alpha\n", encoding="utf-8")
    fixed = run_against(box, config, report)
    assert fixed.returncode == 0, fixed.stdout
    assert statuses(report) == {701: "enabled"} and box.stats()["write_requests"] == 2


def test_a_clients_own_counter_seen_first_as_a_guest_goes_to_its_owner(
    tmp_path: Path, sandbox_factory: SandboxFactory
) -> None:
    """801 is client-beta's own, and a guest (edit) in client-alpha's listing, which comes first: it
    is written under client-beta, its owner, with a comment naming client-alpha (so client-beta's
    workbook has it)."""
    box = sandbox_factory(**{**PORTFOLIO, "guests": {"client-alpha": {801: "edit"}}})
    found = discover(box)
    assert found.returncode == 0, found.stderr
    data = yaml.safe_load(found.stdout)
    under = {a["name"]: [c["id"] for c in a["counters"]] for a in data["accounts"]}
    assert 801 in under["client-beta"] and 801 not in under["client-alpha"]
    assert "- {id: 801, label: Counter 801 — site-801.example}  # also under client-alpha" in found.stdout
