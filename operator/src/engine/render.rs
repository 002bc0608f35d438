//! The human-readable rendering of a plan that `plinth plan` prints: `+` create, `~` update with
//! `old → new` per field, `-/+` replace with the immutable fields that force it, `-` delete, and
//! what waits. Sets show what is added and removed; multi-line strings (user data, policies)
//! show a line diff.

use std::fmt::Write as _;

use similar::{ChangeTag, TextDiff};

use super::attr::{AttrValue, OnChange};
use super::plan::{DeleteReason, FieldChange, Op, Plan, Planned};

/// Counts of a plan's effects, for the summary line and progress output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Components to create.
    pub create: usize,
    /// Components to update in place.
    pub update: usize,
    /// Components to replace.
    pub replace: usize,
    /// Resources to delete outright.
    pub delete: usize,
    /// Components waiting for AWS.
    pub waiting: usize,
    /// Changes that need a replacement the component forbids.
    pub stalled: usize,
}

impl Summary {
    /// Counts what `plan` does.
    pub fn of(plan: &Plan) -> Self {
        let mut summary = Self {
            waiting: plan.waits.len(),
            stalled: plan.stalls.len(),
            ..Self::default()
        };
        for action in &plan.actions {
            match &action.op {
                Op::Create { replaces: None, .. } => summary.create += 1,
                Op::Create {
                    replaces: Some(_), ..
                } => {}
                Op::Update { .. } => summary.update += 1,
                Op::Delete {
                    reason: DeleteReason::Replaced { .. } | DeleteReason::Failed { .. },
                    ..
                } => summary.replace += 1,
                Op::Delete { .. } => summary.delete += 1,
            }
        }
        summary
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} to create, {} to update, {} to replace, {} to delete, {} waiting",
            self.create, self.update, self.replace, self.delete, self.waiting
        )?;
        if self.stalled > 0 {
            write!(f, ", {} stalled", self.stalled)?;
        }
        Ok(())
    }
}

/// Renders `plan` as the diff `plinth plan` prints.
pub fn render(plan: &Plan) -> String {
    if plan.is_empty() {
        return "No changes: AWS matches the spec.\n".to_owned();
    }
    let mut out = String::new();
    let _ = writeln!(out, "Plan: {}.", Summary::of(plan));
    for action in &plan.actions {
        if matches!(
            action.op,
            Op::Create {
                replaces: Some(_),
                ..
            }
        ) {
            // Printed with the delete that starts the replacement.
            continue;
        }
        out.push('\n');
        match &action.op {
            Op::Create {
                planned,
                replaces: None,
                ..
            } => {
                let _ = writeln!(out, "+ {} ({})", action.key, action.kind);
                for (name, value) in planned {
                    let _ = writeln!(out, "    {name}: {}", planned_value(value));
                }
            }
            Op::Create {
                replaces: Some(_), ..
            } => {}
            Op::Update {
                current, changes, ..
            } => {
                let _ = writeln!(out, "~ {} ({} {})", action.key, action.kind, current.id);
                render_changes(&mut out, changes);
            }
            Op::Delete { current, reason } => match reason {
                DeleteReason::Replaced { changes } => {
                    let _ = writeln!(out, "-/+ {} ({} {})", action.key, action.kind, current.id);
                    render_changes(&mut out, changes);
                }
                DeleteReason::Failed { reason } => {
                    let _ = writeln!(
                        out,
                        "-/+ {} ({} {}): AWS reports it failed: {reason}",
                        action.key, action.kind, current.id
                    );
                }
                DeleteReason::NotDesired => {
                    let _ = writeln!(
                        out,
                        "- {} ({} {}): no longer desired",
                        action.key, action.kind, current.id
                    );
                }
                DeleteReason::Duplicate => {
                    let _ = writeln!(
                        out,
                        "- {} ({} {}): duplicate of the resource kept for this component",
                        action.key, action.kind, current.id
                    );
                }
            },
        }
    }
    for stall in &plan.stalls {
        let _ = writeln!(out, "\n! {} ({}): {}", stall.key, stall.kind, stall.message);
        render_changes(&mut out, &stall.changes);
    }
    if !plan.waits.is_empty() {
        out.push('\n');
        for wait in &plan.waits {
            let _ = writeln!(out, "… {} ({}): {}", wait.key, wait.kind, wait.reason);
        }
    }
    out
}

/// A planned value; ids known only after apply print as `<id of key>`.
fn planned_value(value: &Planned) -> String {
    match value {
        Planned::Known(value) | Planned::AfterApply(value) => value.to_string(),
    }
}

fn render_changes(out: &mut String, changes: &[FieldChange]) {
    for change in changes {
        let note = match change.on_change {
            OnChange::Replace => "  (immutable: forces replacement)",
            OnChange::Update | OnChange::CreateOnly => "",
        };
        let name = &change.field;
        match (&change.old, &change.new) {
            (Some(AttrValue::Set(old)), Planned::Known(AttrValue::Set(new))) => {
                let _ = writeln!(out, "    {name}:{note}");
                for added in new.difference(old) {
                    let _ = writeln!(out, "      + {added}");
                }
                for removed in old.difference(new) {
                    let _ = writeln!(out, "      - {removed}");
                }
            }
            (Some(AttrValue::Str(old)), Planned::Known(AttrValue::Str(new)))
                if old.contains('\n') || new.contains('\n') =>
            {
                let _ = writeln!(out, "    {name}:{note}");
                let diff = TextDiff::from_lines(old, new);
                for line in diff.iter_all_changes() {
                    let sign = match line.tag() {
                        ChangeTag::Delete => '-',
                        ChangeTag::Insert => '+',
                        ChangeTag::Equal => ' ',
                    };
                    let _ = write!(out, "      {sign} {}", line.value());
                    if line.missing_newline() {
                        out.push('\n');
                    }
                }
            }
            (old, new) => {
                let old = old
                    .as_ref()
                    .map_or_else(|| "(none)".to_owned(), ToString::to_string);
                let new = planned_value(new);
                let _ = writeln!(out, "    {name}: {old} → {new}{note}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::desired::{DesiredGraph, DesiredResource};
    use crate::engine::key::Kind;
    use crate::engine::observed::Observed;
    use crate::engine::plan::plan;
    use crate::engine::testing::{Net, realise, tweak};

    #[test]
    fn an_empty_plan_says_so() {
        let graph = Net::new(&["a"]).graph();
        let text = render(&plan(&graph, &Observed::new(realise(&graph))));
        assert_eq!(text, "No changes: AWS matches the spec.\n");
    }

    #[test]
    fn shows_creates_updates_replacements_and_deletes() {
        let before = Net::new(&["a", "b"]);
        let mut found = realise(&before.graph());
        tweak(&mut found, "vpc", |vpc| {
            vpc.attrs.insert("dns".into(), false.into());
        });
        tweak(&mut found, "subnet/a", |subnet| {
            subnet.attrs.insert("az".into(), "z".into());
        });
        let after = Net::new(&["a", "c"]);
        let text = render(&plan(&after.graph(), &Observed::new(found)));

        assert!(
            text.starts_with(
                "Plan: 4 to create, 2 to update, 2 to replace, 4 to delete, 0 waiting.\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("\n~ vpc (vpc vpc:vpc)\n    dns: false → true\n"),
            "{text}"
        );
        assert!(
            text.contains("\n-/+ subnet/a (subnet subnet:subnet/a)\n    az: \"z\" → \"a\"  (immutable: forces replacement)\n"),
            "{text}"
        );
        assert!(
            text.contains("    subnet_id: \"subnet:subnet/a\" → <id of subnet/a>  (immutable: forces replacement)"),
            "{text}"
        );
        assert!(text.contains("\n+ subnet/c (subnet)\n    az: \"c\"\n    cidr: \"10.0.2.0/24\"\n    vpc_id: \"vpc:vpc\"\n"), "{text}");
        assert!(
            text.contains("\n- nat/b (nat nat:nat/b): no longer desired\n"),
            "{text}"
        );
    }

    #[test]
    fn shows_set_members_and_multi_line_strings_as_diffs() {
        const GROUP: Kind = Kind("group");
        let desired = DesiredGraph::new([DesiredResource::new(GROUP, "sg/app")
            .updatable("ingress", AttrValue::set(["443".into(), "80".into()]))
            .updatable("user_data", "#cloud-config\nversion: 2\nport: 8080\n")]);
        let Ok(desired) = desired else {
            panic!("valid graph");
        };
        let found = crate::engine::observed::ObservedResource::new(GROUP, "sg/app", "sg-1")
            .attr("ingress", AttrValue::set(["22".into(), "80".into()]))
            .attr("user_data", "#cloud-config\nversion: 1\nport: 8080\n");
        let text = render(&plan(&desired, &Observed::new([found])));
        assert!(
            text.contains("    ingress:\n      + \"443\"\n      - \"22\"\n"),
            "{text}"
        );
        assert!(
            text.contains("    user_data:\n        #cloud-config\n      - version: 1\n      + version: 2\n        port: 8080\n"),
            "{text}"
        );
    }
}
