"""``airlock demo``: the whole lifecycle of a model release, narrated, in a fresh folder.

1. **Build** — four releases of the Lumen support assistant (see
   :mod:`airlock.demo.scenario`): trained, pushed with lineage and notes.
2. **Gate** — a promotion policy, evaluations against the example suites with
   a paired comparison, the policy check, approvals by two people (and the
   author's own approval refused).
3. **Ship** — ``airlock serve`` in this process with v1.0.0 stable and
   simulated customers: v1.1.0 goes out as a canary and is promoted by the
   analysis; then v1.2.0 (a rushed build that fails some calls and leaks
   contact details) goes out and the analysis rolls it back on its own. Time to
   detect and time to revert are measured from what the customers saw. Last,
   v1.3.0 (1.1.0's weights with an evasive prompt template: no errors, no
   slowdown) goes out with online scoring on, and the refusal scorer rolls it back;
   the narration says which signal fired and on how many scored answers
   (:mod:`airlock.demo.ship`).
4. **Account** — release notes, the audit log and its verification; the
   dashboard keeps running at the printed URL (``--no-serve`` exits instead).

Everything goes through the same services the CLI, the REST API and the
dashboard use; the demo is a script over them, not a simulation of them.

Internal: use the library through ``airlock`` (see ``airlock.__all__``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.table import Table

from airlock.config import Settings
from airlock.core.digest import short
from airlock.demo import scenario
from airlock.demo.narration import blocked, detail, secs, signal_name
from airlock.demo.traffic import UserTraffic
from airlock.errors import AirlockError, Forbidden
from airlock.services.identity import Actor
from airlock.services.workspace import Workspace

PEOPLE = {
    "maya": ("admin", "platform lead, owns the workspace"),
    "carol": ("author", "ML engineer, trains the assistant"),
    "bob": ("approver", "support lead"),
    "alice": ("approver", "safety reviewer"),
    "olga": ("operator", "on-call SRE, drives rollouts"),
}


@dataclass(frozen=True, slots=True)
class DemoOptions:
    folder: Path | None = None
    fast: bool = False
    serve: bool = True
    host: str = "127.0.0.1"
    port: int = 8080

    @property
    def rps(self) -> float:
        return 100.0 if self.fast else 80.0

    def canary(self, *, quality: bool = False) -> dict[str, Any]:
        """The rollout spec of every rollout (shorter bakes with ``--fast``); ``quality``
        turns on online scoring (:data:`~airlock.demo.scenario.QUALITY`)."""
        bakes = (3, 3, 2) if self.fast else (10, 8, 6)
        spec: dict[str, Any] = {
            "strategy": "canary",
            "steps": [
                {"weight_pct": 20, "bake_seconds": bakes[0]},
                {"weight_pct": 50, "bake_seconds": bakes[1]},
                {"weight_pct": 100, "bake_seconds": bakes[2]},
            ],
            "analysis": {
                "alpha": 0.001,  # one false rollback in a thousand healthy rollouts
                "min_requests": 80 if self.fast else 150,
                "max_step_seconds": 90,
                "on_insufficient_data": "rollback",
            },
        }
        if quality:
            spec["quality"] = dict(scenario.QUALITY)
        return spec


@dataclass
class DemoResult:
    folder: Path
    url: str | None = None
    token: str = ""
    promoted_rollout: int | None = None
    rolled_back_rollout: int | None = None
    evasive_rollout: int | None = None
    evasive_signal: str | None = None  # the metric whose evidence rolled v1.3.0 back
    evasive_scored: int = 0  # scored answers (both arms) in the verdict that rolled it back
    evasive_detect_seconds: float | None = None
    detect_seconds: float | None = None
    revert_seconds: float | None = None
    faulty_requests: int = 0
    faulted_requests: int = 0
    user_errors: int = 0
    wall_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class Demo:
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        folder = options.folder or Path(tempfile.mkdtemp(prefix="airlock-demo-"))
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / ".airlock").exists():
            raise AirlockError(
                f"{folder} already holds an Airlock workspace; the demo needs a fresh folder",
                hint="pass --dir with a new or empty folder, or leave it out",
            )
        if options.serve and options.port:
            _check_port(options.host, options.port)
        self.folder = folder
        self.result = DemoResult(folder)
        self.ws = Workspace.open(Settings(home=folder / ".airlock", user="maya"), create=True)
        self.people: dict[str, Actor] = {}
        self.secrets: dict[str, str] = {}
        self.traffic: UserTraffic | None = None  # simulated customers, from act 3 on

    # -- narration ----------------------------------------------------------------------
    def act(self, number: int, title: str, subtitle: str) -> None:
        self.console.print()
        self.console.rule(f"[bold cyan]{number}. {title}[/]", align="left")
        self.console.print(f"[dim]{subtitle}[/]")

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")

    def done(self, text: str) -> None:
        self.console.print(f"  [green]✓[/] {text}")

    # -- the run ------------------------------------------------------------------------
    def run(self) -> DemoResult:
        began = time.perf_counter()
        self.console.print(
            Panel.fit(
                "[bold]Airlock demo[/] — the Lumen support assistant goes from training to "
                "production\n[dim]workspace: "
                f"{self.ws.home}   (SQLite catalog + local blob store)[/]",
                border_style="cyan",
            )
        )
        try:
            self.setup_people()
            self.build()
            self.gate()
            server = self.ship()
            try:
                self.account()
                self.result.wall_seconds = time.perf_counter() - began
                self.summary()
                if self.options.serve:
                    self.keep_serving(server)
            finally:
                server.stop()
        finally:
            self.ws.close()
        return self.result

    def setup_people(self) -> None:
        from airlock.services.tokens import Tokens, save_token

        tokens = Tokens(self.ws)
        owner = tokens.bootstrap("maya")
        assert owner is not None  # a fresh workspace
        save_token(self.ws.home, owner.secret)
        self.secrets["maya"] = owner.secret
        maya = tokens.authenticate(owner.secret)
        self.people["maya"] = maya
        for name, (role, _) in PEOPLE.items():
            if name != "maya":
                issued = tokens.create(user=name, role=role, actor=maya, note="demo")
                self.secrets[name] = issued.secret
                self.people[name] = tokens.authenticate(issued.secret)
        self.result.token = owner.secret

    # -- 1 ---------------------------------------------------------------------------------
    def build(self) -> None:
        from airlock.services.registry import Registry

        t0 = time.perf_counter()
        self.act(1, "Build", "train the built-in model on two corpora; push immutable releases")
        team = Table(box=None, pad_edge=False, show_header=False)
        for name, (role, what) in PEOPLE.items():
            team.add_row(f"  [bold]{name}[/]", role, f"[dim]{what}[/]")
        self.console.print(team)
        reg = Registry(self.ws)
        table = Table("release", "digest", "files", "new bytes", "parent", "trained on")
        for plan in scenario.RELEASES:
            folder = scenario.build_folder(self.folder / "build", plan)
            pushed = reg.push(
                folder,
                name=scenario.MODEL,
                version=plan.version,
                actor=self.people["carol"],
                notes=plan.notes,
                datasets=scenario.datasets_of(plan),
                parent=plan.parent,
                code=scenario.CODE,
                training_config={"order": scenario.ORDER, "corpus": plan.corpus},
            )
            table.add_row(
                f"[bold]{pushed.ref}[/]",
                short(pushed.digest),
                str(pushed.files),
                f"{pushed.bytes_new:,}",
                plan.parent or "—",
                plan.corpus,
            )
        self.console.print(table)
        for plan in scenario.RELEASES:
            self.say(f"[bold]{plan.version}[/] [dim]{plan.notes.summary}[/]")
        diff, _, _ = reg.diff("lumen@1.1.0", "lumen@1.2.0")
        changed = ", ".join(c.key for c in diff.files_changed) or "nothing"
        self.say(
            f"lumen@1.2.0 differs from 1.1.0 only in [bold]{changed}[/]: the weights are "
            "stored once (content-addressed), the new serving configuration turns on faults."
        )
        diff, _, _ = reg.diff("lumen@1.1.0", "lumen@1.3.0")
        changed = ", ".join(c.key for c in diff.files_changed) or "nothing"
        self.say(
            f"lumen@1.3.0 differs from 1.1.0 only in [bold]{changed}[/]: same weights, a "
            "new prompt template from the legal review."
        )
        self.result.timings["build"] = time.perf_counter() - t0

    # -- 2 ---------------------------------------------------------------------------------
    def gate(self) -> None:
        from airlock.services.evals import Evals
        from airlock.services.governance import Governance
        from airlock.services.registry import Registry
        from airlock.services.serving import Serving

        t0 = time.perf_counter()
        self.act(2, "Gate", "policy, evaluations, the policy check and two approvals")
        maya, carol = self.people["maya"], self.people["carol"]
        Registry(self.ws).set_alias(
            "stable", "lumen@1.0.0", actor=maya, reason="launched before the policy existed"
        )
        Serving(self.ws).create(
            scenario.SERVICE, "lumen@1.0.0", actor=maya, reason="the support assistant goes live"
        )
        self.done(f"service [bold]{scenario.SERVICE}[/] serves lumen@1.0.0 (alias stable)")
        gov = Governance(self.ws)
        gov.set_policy(scenario.MODEL, scenario.POLICY, actor=maya, reason="demo rules")
        self.done("policy v1 for lumen: stage stable needs 2 approvers, the safety suite, notes")

        evals = Evals(self.ws)
        table = Table("release", "suite", "cases", "pass rate", "baseline", "Δ (95 % CI)", "p")
        runs = (
            ("lumen@1.1.0", "quality", "lumen@1.0.0"),
            ("lumen@1.1.0", "safety", None),
            ("lumen@1.2.0", "safety", "lumen@1.1.0"),
            ("lumen@1.3.0", "safety", "lumen@1.1.0"),
        )
        for ref, suite, base in runs:
            run = evals.run(
                ref, scenario.example_path("suites", f"{suite}.yaml"), actor=carol, baseline=base
            )
            cmp = run.pass_rate
            table.add_row(
                ref,
                suite,
                str(run.n),
                f"{run.candidate_pass_rate:.0%}",
                f"{base} {cmp.baseline:.0%}" if cmp and base else "—",
                f"{cmp.delta:+.0%} ({cmp.ci.low:+.0%} … {cmp.ci.high:+.0%})" if cmp else "—",
                (f"{cmp.p_value:.2g}" + (" [green]*[/]" if cmp.p_value < 0.05 else ""))
                if cmp
                else "—",
            )
        self.console.print(table)
        self.say(
            "[dim]v1.1.0 knows the new lamp (quality up, significant); v1.2.0 and v1.3.0 "
            "were only run through the safety suite, the one the policy asks for — and "
            "both pass.[/]"
        )

        verdict = gov.check("lumen@1.1.0", "stable")
        self.say(f"airlock check lumen@1.1.0 --for stable → [bold red]{blocked(verdict)}[/]")
        try:
            gov.approve("lumen@1.1.0", stage="stable", actor=carol, comment="my own work")
        except Forbidden as exc:
            self.say(f"[yellow]carol approves her own release →[/] refused: {exc.message}")
        for ref in ("lumen@1.1.0", "lumen@1.2.0", "lumen@1.3.0"):
            for who, why in (("bob", "answers the new lamp"), ("alice", "safety suite passes")):
                gov.approve(ref, stage="stable", actor=self.people[who], comment=why)
            self.done(f"{ref} approved for stable by bob and alice")
        verdict = gov.check("lumen@1.1.0", "stable")
        self.say(
            f"airlock check lumen@1.1.0 --for stable → [bold green]passes[/] "
            f"({len(verdict.results)} rules)"
        )
        self.result.timings["gate"] = time.perf_counter() - t0

    # -- 3 ---------------------------------------------------------------------------------
    def ship(self) -> Any:
        """Act 3 (:class:`airlock.demo.ship.Ship`); returns the running server."""
        from airlock.demo.ship import Ship

        return Ship(self).run()

    # -- 4 ---------------------------------------------------------------------------------
    def account(self) -> None:
        from airlock import audit
        from airlock.services.notes import ReleaseNotes

        self.act(4, "Account", "release notes, the audit log and its verification")
        notes = ReleaseNotes(self.ws).render("lumen@1.1.0", stage="stable", against="lumen@1.0.0")
        self.console.print(
            Panel(Markdown(notes), title="airlock notes lumen@1.1.0", border_style="dim")
        )
        with self.ws.db.read() as conn:
            events = list(audit.entries(conn))
            report = audit.verify(conn)
        table = Table("#", "actor", "action", "subject", "detail", title="airlock audit log")
        for e in events:
            if e.action in ("service.plan", "token.create"):
                continue  # every traffic step and token: in the full log, left out here
            table.add_row(str(e.seq), e.actor, e.action, e.subject, detail(e.details))
        self.console.print(table)
        hidden = sum(1 for e in events if e.action in ("service.plan", "token.create"))
        self.say(f"[dim]{hidden} service.plan and token.create events not shown[/]")
        if report.ok:
            self.done(
                f"airlock audit verify: {report.checked} events, hash chain intact, head "
                f"{report.head_hash[:16]}"
            )
        else:
            self.console.print(f"  [bold red]audit chain broken:[/] {report.problem}")

    def summary(self) -> None:
        r = self.result
        table = Table(show_header=False, box=None)
        table.add_row("v1.1.0", f"promoted by the analysis (rollout #{r.promoted_rollout})")
        table.add_row("v1.2.0", f"rolled back by the analysis (rollout #{r.rolled_back_rollout})")
        table.add_row("time to detect", secs(r.detect_seconds))
        table.add_row("time to revert", secs(r.revert_seconds))
        table.add_row(
            "v1.3.0",
            f"rolled back by the analysis (rollout #{r.evasive_rollout}): "
            f"{signal_name(r.evasive_signal) if r.evasive_signal else '—'} fired on "
            f"{r.evasive_scored} scored answers, {secs(r.evasive_detect_seconds)}",
        )
        table.add_row("demo wall time", f"{r.wall_seconds:.1f} s")
        self.console.print(Panel(table, title="outcome", border_style="green"))

    def keep_serving(self, server: Any) -> None:
        self.console.print(
            Panel.fit(
                f"Dashboard: [bold]{server.url}/[/]\n"
                f"Sign in with the admin token: [bold]{self.result.token}[/]\n"
                f"(also in {self.ws.home / 'token'}; try the CLI there: "
                f"cd {self.folder} && airlock rollout history {scenario.SERVICE})\n"
                "[dim]Ctrl-C stops the server.[/]",
                border_style="cyan",
                title="airlock serve keeps running",
            )
        )
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            if self.traffic is not None:
                self.traffic.stop()


def _check_port(host: str, port: int) -> None:
    """Fail before the first act, not in the third, when the dashboard's port is taken."""
    import socket

    from airlock.errors import Conflict

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise Conflict(
                f"cannot listen on {host}:{port}: {exc.strerror}",
                hint="pass --port with a free port (0 picks one), or --no-serve",
            ) from exc


def prepare(folder: Path) -> Demo:
    """Acts 1 and 2, quietly: people with tokens, the four releases, the policy, evaluations
    and approvals, the service on v1.0.0. For the browser test and the screenshot script."""
    import io

    demo = Demo(DemoOptions(folder=folder, serve=False), Console(file=io.StringIO()))
    demo.setup_people()
    demo.build()
    demo.gate()
    return demo


def run(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run the demo (see the module docstring); returns what it measured."""
    return Demo(options, console or Console()).run()


__all__ = ["Demo", "DemoOptions", "DemoResult", "prepare", "run"]
