//! Device dependencies: a device may sit behind a parent device of the same tenant (the router
//! of a site, the hypervisor of a virtual machine). When the parent is down, its children go
//! silent too; one router outage must become one notification, not thirty.
//!
//! The rules, each tested below:
//! - **Map.** A parent is a device of the same tenant, never the device itself, never one of
//!   its descendants (no cycles), and a chain of parents is at most [`MAX_DEPTH`] long, so the
//!   sweeper's parent lookups stay bounded.
//! - **Suppression.** A child's alert raised while its parent's "device down" is open, or while
//!   its parent is itself overdue, is recorded but suppressed: attached to the parent's alert
//!   instead of notifying.
//! - **Ordering inside one sweep.** Parents and children go silent together, and their slots
//!   may pass in the same sweep or the child's first. The sweeper plans parents before their
//!   children ([`plan_sweep`]), so a parent raised in the sweep suppresses its children in the
//!   same sweep. A child whose parent is not overdue yet but was last heard at about the same
//!   time (no later than [`PEER_WINDOW_MS`] after the child) is *held* until the parent's due
//!   time, when it is looked at again — at most [`MAX_HOLD_MS`] later.
//! - **Release.** When the parent comes back, children still down [`RELEASE_GRACE_MS`] later
//!   are raised individually.

use std::collections::{BTreeMap, HashMap};

use crate::ids::DeviceId;

/// Longest chain of parents above a device.
pub const MAX_DEPTH: usize = 4;

/// A child last heard no more than this before its parent went silent "at the same time".
pub const PEER_WINDOW_MS: i64 = 2 * 60_000;

/// Longest a child's "device down" waits for its parent's due time.
pub const MAX_HOLD_MS: i64 = 5 * 60_000;

/// How long after a parent comes back its children still down are raised individually: they
/// have this long to send again on their own.
pub const RELEASE_GRACE_MS: i64 = 2 * 60_000;

/// Why a parent is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParentInvalid {
    #[error("a device cannot be its own parent")]
    OwnParent,
    #[error("the parent device does not exist in this tenant")]
    UnknownParent,
    #[error("the parent device is revoked")]
    RevokedParent,
    #[error("{parent} is below {child} already: that parent would make a cycle")]
    Cycle { child: DeviceId, parent: DeviceId },
    #[error("chains of parent devices are at most {max} long")]
    TooDeep { max: usize },
}

/// A tenant's dependency map: each device's parent. Read in one go (one partition) when the
/// map changes, so the checks see the whole tenant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DependencyMap {
    parents: BTreeMap<DeviceId, DeviceId>,
}

impl DependencyMap {
    pub fn new(links: impl IntoIterator<Item = (DeviceId, DeviceId)>) -> Self {
        Self {
            parents: links.into_iter().collect(),
        }
    }

    pub fn parent(&self, child: &DeviceId) -> Option<&DeviceId> {
        self.parents.get(child)
    }

    /// Direct children of `parent`, sorted.
    pub fn children(&self, parent: &DeviceId) -> Vec<&DeviceId> {
        self.parents
            .iter()
            .filter(|(_, p)| *p == parent)
            .map(|(c, _)| c)
            .collect()
    }

    /// Number of parents above `device` (0: it has none). Stops at a cycle or past the limit.
    pub fn depth(&self, device: &DeviceId) -> usize {
        let mut at = device;
        let mut depth = 0;
        while let Some(p) = self.parents.get(at) {
            depth += 1;
            if depth > MAX_DEPTH + 1 || p == device {
                break;
            }
            at = p;
        }
        depth
    }

    /// Longest chain of descendants below `device` (0: no child).
    pub fn height(&self, device: &DeviceId) -> usize {
        fn walk(map: &DependencyMap, d: &DeviceId, budget: usize) -> usize {
            if budget == 0 {
                return 0;
            }
            map.children(d)
                .into_iter()
                .map(|c| 1 + walk(map, c, budget - 1))
                .max()
                .unwrap_or(0)
        }
        walk(self, device, MAX_DEPTH + 2)
    }

    /// Checks that `child` may get `parent`. `parent_known` tells whether the parent is an
    /// active device of the same tenant (the caller read it through tenant-scoped keys).
    pub fn check(
        &self,
        child: &DeviceId,
        parent: &DeviceId,
        parent_known: ParentRecord,
    ) -> Result<(), ParentInvalid> {
        if child == parent {
            return Err(ParentInvalid::OwnParent);
        }
        match parent_known {
            ParentRecord::Missing => return Err(ParentInvalid::UnknownParent),
            ParentRecord::Revoked => return Err(ParentInvalid::RevokedParent),
            ParentRecord::Active => {}
        }
        let mut at = parent;
        let mut steps = 0;
        loop {
            if at == child {
                return Err(ParentInvalid::Cycle {
                    child: child.clone(),
                    parent: parent.clone(),
                });
            }
            match self.parents.get(at) {
                Some(p) if steps <= MAX_DEPTH => {
                    at = p;
                    steps += 1;
                }
                _ => break,
            }
        }
        // Parents above the new parent, the new link, and the chain below the child.
        let depth = self.depth(parent) + 1 + self.height(child);
        if depth > MAX_DEPTH {
            return Err(ParentInvalid::TooDeep { max: MAX_DEPTH });
        }
        Ok(())
    }
}

/// What the caller found when it read a would-be parent in the child's tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentRecord {
    Active,
    Revoked,
    Missing,
}

/// A late device as the sweeper sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateDevice {
    pub id: DeviceId,
    pub parent: Option<DeviceId>,
    pub last_seen_ms: i64,
    pub due_ms: i64,
    /// Its own "device down" is open already.
    pub down_open: bool,
    /// ... and suppressed behind its parent.
    pub suppressed: bool,
}

/// A parent that is not itself among the sweep's late devices: what the sweeper read of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParentView {
    pub last_seen_ms: i64,
    pub due_ms: i64,
    pub down_open: bool,
}

/// What the sweeper does with one late device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepAction {
    /// Open its "device down" and notify.
    Raise,
    /// Open its "device down" attached to the parent's alert, without notifying.
    Suppress { parent: DeviceId },
    /// Look again at `until_ms`: the parent went silent at about the same time and will be due
    /// by then.
    Hold { until_ms: i64 },
    /// Its suppressed alert outlived the parent's outage: announce it now.
    Release,
    /// Nothing: its alert is open already (or it is not due).
    Skip,
}

/// Plans one sweep at `now_ms`: devices in the order to act on them (parents before their
/// children, then by id, so two sweepers plan alike) with their actions. `outside` holds the
/// parents read outside the sweep's late devices.
pub fn plan_sweep(
    late: &[LateDevice],
    outside: &HashMap<DeviceId, ParentView>,
    now_ms: i64,
) -> Vec<(DeviceId, SweepAction)> {
    let by_id: HashMap<&DeviceId, &LateDevice> = late.iter().map(|d| (&d.id, d)).collect();
    // Depth within the sweep: how many of a device's ancestors are late too.
    let depth = |d: &LateDevice| {
        let mut n = 0;
        let mut at = d;
        while let Some(p) = at.parent.as_ref().and_then(|p| by_id.get(p)) {
            n += 1;
            if n > MAX_DEPTH {
                break;
            }
            at = p;
        }
        n
    };
    let mut order: Vec<&LateDevice> = late.iter().collect();
    order.sort_by(|a, b| depth(a).cmp(&depth(b)).then_with(|| a.id.cmp(&b.id)));
    // Whether each planned device will be down after the sweep (raised, suppressed or open).
    let mut down: HashMap<&DeviceId, bool> = HashMap::new();
    let mut plan = Vec::with_capacity(order.len());
    for d in order {
        let parent =
            d.parent
                .as_ref()
                .and_then(|p| match (down.get(p), by_id.get(p), outside.get(p)) {
                    (Some(is_down), Some(late), _) => Some(ParentView {
                        last_seen_ms: late.last_seen_ms,
                        due_ms: late.due_ms,
                        down_open: *is_down,
                    }),
                    (_, _, Some(view)) => Some(*view),
                    _ => None,
                });
        let parent_down = parent.is_some_and(|p| p.down_open || p.due_ms <= now_ms);
        let action = if d.due_ms > now_ms {
            SweepAction::Skip
        } else if d.down_open {
            if d.suppressed && !parent_down {
                SweepAction::Release
            } else {
                SweepAction::Skip
            }
        } else {
            match &d.parent {
                None => SweepAction::Raise,
                Some(p) => decide(d, p, parent, now_ms),
            }
        };
        let is_down =
            d.down_open || matches!(action, SweepAction::Raise | SweepAction::Suppress { .. });
        down.insert(&d.id, is_down);
        plan.push((d.id.clone(), action));
    }
    plan
}

/// The action for one due child given what is known of its parent.
fn decide(
    child: &LateDevice,
    parent_id: &DeviceId,
    parent: Option<ParentView>,
    now_ms: i64,
) -> SweepAction {
    let Some(parent) = parent else {
        return SweepAction::Raise;
    };
    if parent.down_open || parent.due_ms <= now_ms {
        return SweepAction::Suppress {
            parent: parent_id.clone(),
        };
    }
    let together = parent.last_seen_ms <= child.last_seen_ms + PEER_WINDOW_MS;
    if together && parent.due_ms <= now_ms + MAX_HOLD_MS {
        return SweepAction::Hold {
            until_ms: parent.due_ms,
        };
    }
    SweepAction::Raise
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> DeviceId {
        DeviceId::parse(s).expect("id")
    }

    const NOW: i64 = 1_790_000_000_000;

    fn late(name: &str, parent: Option<&str>, last_seen_ms: i64) -> LateDevice {
        LateDevice {
            id: id(name),
            parent: parent.map(id),
            last_seen_ms,
            due_ms: last_seen_ms + 300_000,
            down_open: false,
            suppressed: false,
        }
    }

    #[test]
    fn a_router_with_thirty_devices_behind_it_raises_once() {
        // The children sorted before the router by id, and silent a little earlier than it.
        let mut devices: Vec<LateDevice> = (0..30)
            .map(|n| late(&format!("a-pc-{n:02}"), Some("z-router"), NOW - 400_000 - n))
            .collect();
        devices.push(late("z-router", None, NOW - 390_000));
        let plan = plan_sweep(&devices, &HashMap::new(), NOW);
        assert_eq!(plan.len(), 31);
        assert_eq!(
            plan[0],
            (id("z-router"), SweepAction::Raise),
            "parent first"
        );
        let suppressed = plan
            .iter()
            .filter(|(_, a)| {
                *a == SweepAction::Suppress {
                    parent: id("z-router"),
                }
            })
            .count();
        assert_eq!(suppressed, 30);
    }

    #[test]
    fn actions_follow_what_is_known_of_the_parent() {
        let child = late("pc", Some("router"), NOW - 400_000);
        let view = |last_seen_ms: i64, down_open: bool| ParentView {
            last_seen_ms,
            due_ms: last_seen_ms + 300_000,
            down_open,
        };
        let table: Vec<(&str, Option<ParentView>, SweepAction)> = vec![
            ("unknown parent", None, SweepAction::Raise),
            (
                "parent down already",
                Some(view(NOW - 10_000, true)),
                SweepAction::Suppress {
                    parent: id("router"),
                },
            ),
            (
                "parent overdue, not raised yet",
                Some(view(NOW - 350_000, false)),
                SweepAction::Suppress {
                    parent: id("router"),
                },
            ),
            (
                "parent silent since about the same time, due soon",
                Some(view(NOW - 290_000, false)),
                SweepAction::Hold {
                    until_ms: NOW + 10_000,
                },
            ),
            (
                "parent heard well after the child went silent",
                Some(view(NOW - 30_000, false)),
                SweepAction::Raise,
            ),
        ];
        for (name, parent, want) in table {
            let mut outside = HashMap::new();
            if let Some(p) = parent {
                outside.insert(id("router"), p);
            }
            let plan = plan_sweep(std::slice::from_ref(&child), &outside, NOW);
            assert_eq!(plan, vec![(id("pc"), want)], "{name}");
        }
    }

    #[test]
    fn open_alerts_and_not_yet_due_devices_are_skipped() {
        let mut open = late("pc", None, NOW - 400_000);
        open.down_open = true;
        let early = late("ws", None, NOW - 100_000);
        let plan = plan_sweep(&[open, early], &HashMap::new(), NOW);
        assert!(
            plan.iter().all(|(_, a)| *a == SweepAction::Skip),
            "{plan:?}"
        );
    }

    #[test]
    fn a_suppressed_child_is_released_once_its_parent_is_back() {
        let mut child = late("pc", Some("router"), NOW - 400_000);
        child.down_open = true;
        child.suppressed = true;
        let back = ParentView {
            last_seen_ms: NOW - 5_000,
            due_ms: NOW + 295_000,
            down_open: false,
        };
        let still_down = ParentView {
            down_open: true,
            ..back
        };
        for (parent, want) in [
            (back, SweepAction::Release),
            (still_down, SweepAction::Skip),
        ] {
            let outside = HashMap::from([(id("router"), parent)]);
            let plan = plan_sweep(std::slice::from_ref(&child), &outside, NOW);
            assert_eq!(plan, vec![(id("pc"), want)]);
        }
    }

    #[test]
    fn a_chain_is_planned_top_down() {
        let devices = vec![
            late("vm", Some("host"), NOW - 400_000),
            late("host", Some("switch"), NOW - 400_000),
            late("switch", None, NOW - 400_000),
        ];
        let plan = plan_sweep(&devices, &HashMap::new(), NOW);
        assert_eq!(
            plan,
            vec![
                (id("switch"), SweepAction::Raise),
                (
                    id("host"),
                    SweepAction::Suppress {
                        parent: id("switch")
                    }
                ),
                (id("vm"), SweepAction::Suppress { parent: id("host") }),
            ]
        );
    }

    #[test]
    fn parents_are_checked_for_cycles_depth_and_existence() {
        let map = DependencyMap::new([(id("b"), id("a")), (id("c"), id("b")), (id("d"), id("c"))]);
        assert_eq!(map.depth(&id("d")), 3);
        assert_eq!(map.height(&id("a")), 3);
        assert_eq!(
            map.check(&id("x"), &id("x"), ParentRecord::Active),
            Err(ParentInvalid::OwnParent)
        );
        assert_eq!(
            map.check(&id("x"), &id("y"), ParentRecord::Missing),
            Err(ParentInvalid::UnknownParent)
        );
        assert_eq!(
            map.check(&id("x"), &id("y"), ParentRecord::Revoked),
            Err(ParentInvalid::RevokedParent)
        );
        assert!(matches!(
            map.check(&id("a"), &id("d"), ParentRecord::Active),
            Err(ParentInvalid::Cycle { .. })
        ));
        // d is at depth 3; a child of d is at depth 4 (allowed), one more is not.
        assert_eq!(map.check(&id("e"), &id("d"), ParentRecord::Active), Ok(()));
        let deeper = DependencyMap::new([
            (id("b"), id("a")),
            (id("c"), id("b")),
            (id("d"), id("c")),
            (id("e"), id("d")),
        ]);
        assert_eq!(
            deeper.check(&id("f"), &id("e"), ParentRecord::Active),
            Err(ParentInvalid::TooDeep { max: MAX_DEPTH })
        );
        // Moving a subtree counts its height too: x has a child, so x under d is too deep.
        let with_sub = DependencyMap::new([
            (id("b"), id("a")),
            (id("c"), id("b")),
            (id("d"), id("c")),
            (id("y"), id("x")),
        ]);
        assert_eq!(
            with_sub.check(&id("x"), &id("d"), ParentRecord::Active),
            Err(ParentInvalid::TooDeep { max: MAX_DEPTH })
        );
        assert_eq!(with_sub.children(&id("x")), vec![&id("y")]);
    }
}
