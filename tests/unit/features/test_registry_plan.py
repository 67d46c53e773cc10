"""Registry plan rules (pure): add, change, metadata, remove, and the refusal of unbumped changes."""

from __future__ import annotations

from datetime import datetime, timedelta

from features.definitions import ACCOUNT, TRANSACTIONS, Aggregation, WindowedFeatureGroup
from features.registry.plan import AppliedGroup, make_plan

H1 = timedelta(hours=1)


def group(name: str = "g", version: int = 1, window: timedelta = H1, owner: str = "o") -> WindowedFeatureGroup:
    return WindowedFeatureGroup(name=name, version=version, entity=ACCOUNT, ttl=H1, description="d", owner=owner,
                                source=TRANSACTIONS,
                                aggregations=[Aggregation(name="n", function="count", windows=(window,))])


def applied(g: WindowedFeatureGroup, seq: int = 1, status: str = "active") -> AppliedGroup:
    return AppliedGroup(name=g.name, version=g.version, fingerprint=g.fingerprint(),
                        definition_hash=g.definition_hash(), status=status, definition=g.model_dump_json(),
                        apply_id=f"a{seq}", apply_seq=seq, applied_at=datetime(2024, 1, seq), applied_by="me")


def plan_for(desired: list[WindowedFeatureGroup], rows: list[AppliedGroup]):
    current = {r.name: r for r in sorted(rows, key=lambda r: r.apply_seq)}
    history = {(r.name, r.version): r.fingerprint for r in rows}
    return make_plan(desired, current, history)


def only(plan):
    assert not plan.errors, plan.errors
    assert len(plan.changes) == 1
    return plan.changes[0]


def test_new_group_is_added_and_needs_a_backfill() -> None:
    change = only(plan_for([group()], []))
    assert (change.action, change.old_version, change.new_version, change.backfill) == ("add", None, 1, True)


def test_identical_group_is_unchanged() -> None:
    plan = plan_for([group()], [applied(group())])
    assert only(plan).action == "unchanged" and not plan.has_changes


def test_metadata_change_keeps_the_version_and_needs_no_backfill() -> None:
    change = only(plan_for([group(owner="new")], [applied(group())]))
    assert (change.action, change.new_version, change.backfill) == ("metadata", 1, False)
    assert change.details == ("fields: owner",)


def test_changed_computation_without_a_version_bump_is_refused() -> None:
    plan = plan_for([group(window=2 * H1)], [applied(group())])
    assert plan.changes == []
    assert plan.errors == ["g: the computation changed but version 1 was already applied with another definition; "
                           "bump version to 2"]


def test_bumped_change_is_a_new_version_with_backfill_and_feature_diff() -> None:
    change = only(plan_for([group(version=2, window=2 * H1)], [applied(group())]))
    assert (change.action, change.old_version, change.new_version, change.backfill) == ("change", 1, 2, True)
    assert "features added: n_2h" in change.details and "features removed: n_1h" in change.details


def test_version_bump_without_a_change_is_reported_as_such() -> None:
    change = only(plan_for([group(version=2)], [applied(group())]))
    assert change.action == "change" and change.details[0] == "version bump only: same computation"


def test_version_below_the_applied_one_that_never_existed_is_refused() -> None:
    plan = plan_for([group(version=1, window=2 * H1)], [applied(group(version=3))])
    assert plan.errors and "use version 4" in plan.errors[0]


def test_going_back_to_an_applied_version_with_its_own_definition_is_allowed() -> None:
    rows = [applied(group(version=1), 1), applied(group(version=2, window=2 * H1), 2)]
    change = only(plan_for([group(version=1)], rows))
    assert (change.action, change.old_version, change.new_version) == ("change", 2, 1)
    assert change.details[0] == "back to the applied definition of v1"


def test_group_missing_from_code_is_removed_and_can_be_re_added() -> None:
    change = only(plan_for([], [applied(group())]))
    assert (change.action, change.old_version, change.backfill) == ("remove", 1, False)
    removed = [applied(group(), 1), applied(group(), 2, status="removed")]
    assert plan_for([], removed).changes == []  # already removed: nothing to do
    change = only(plan_for([group()], removed))
    assert change.action == "add" and change.details == ("re-added (was v1, removed)",)


def test_duplicate_names_in_code_are_an_error() -> None:
    plan = plan_for([group(), group()], [])
    assert plan.errors == ["g: defined twice in code"]


def test_render_is_one_line_per_group_and_a_summary() -> None:
    plan = plan_for([group("a"), group("b", version=2, window=2 * H1)], [applied(group("b")), applied(group("c"))])
    text = plan.render().splitlines()
    assert text[0].split() == ["+", "a", "add", "v1", "[backfill]"]
    assert text[1].split()[:5] == ["~", "b", "change", "v1", "->"]
    assert any(line.split()[:3] == ["-", "c", "remove"] for line in text)
    assert text[-1] == "Plan: 1 to add, 1 to change, 0 metadata, 1 to remove, 0 error(s)."
    assert plan.counts() == {"add": 1, "change": 1, "metadata": 0, "remove": 1}
