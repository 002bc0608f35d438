//! Checks the operator's committed IAM policy (`terraform-bootstrap/policy.json`) against the
//! AWS operations the end-to-end run actually sent: every process with `PLINTH_RECORD_CALLS_DIR`
//! set lists its operations there (`plinth_operator::aws::calls::RECORD_CALLS_DIR`), and
//! `tests/run` calls this afterwards.
//!
//! - the committed policy grants exactly what the drivers declare (`plinth iam-policy`);
//! - every recorded operation's action is granted (else the operator would be denied in AWS);
//! - every granted action of a service the suites called was recorded, except the actions AWS
//!   only checks inside another call (`AUTHORIZATION_ONLY`): a grant nothing exercises is either
//!   dead privilege or an untested code path. Services no suite called (a run that left them
//!   out) are listed, not failed.
//!
//! Usage: `policy-check RECORD_DIR POLICY_JSON`

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use plinth_operator::cli::iam_policy::{self, AUTHORIZATION_ONLY};

/// The actions of every `service<TAB>operation` line in the directory's `*.tsv` files.
fn recorded_actions(dir: &Path) -> Result<BTreeSet<String>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut actions = BTreeSet::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
            .path();
        if path.extension().is_none_or(|ext| ext != "tsv") {
            continue;
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (service, operation) = line.split_once('\t').ok_or_else(|| {
                format!("{}: not `service<TAB>operation`: {line:?}", path.display())
            })?;
            actions.insert(iam_policy::action_of_call(service, operation));
        }
    }
    Ok(actions)
}

fn prefix(action: &str) -> &str {
    action.split_once(':').map_or(action, |(p, _)| p)
}

fn run(dir: &Path, policy_path: &Path) -> Result<(usize, Vec<String>), String> {
    let recorded = recorded_actions(dir)?;
    if recorded.is_empty() {
        return Err(format!(
            "no AWS call was recorded in {}: was PLINTH_RECORD_CALLS_DIR set for the test run?",
            dir.display()
        ));
    }
    let text = std::fs::read_to_string(policy_path)
        .map_err(|e| format!("cannot read {}: {e}", policy_path.display()))?;
    let document: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not JSON: {e}", policy_path.display()))?;
    let granted = iam_policy::actions_of(&document);

    let mut failures = Vec::new();
    let mut passed = 0;

    // Policy ⊆ declared actions: the committed file is what the drivers declare now.
    let generated = plinth_operator::cli::iam_policy_json().map_err(|e| e.to_string())?;
    if generated == text {
        passed += 1;
        println!(
            "  ok    {} is what the drivers declare",
            policy_path.display()
        );
    } else {
        failures.push(format!(
            "{} is stale: regenerate it with `plinth iam-policy > {}`",
            policy_path.display(),
            policy_path.display()
        ));
    }

    // Recorded ⊆ policy.
    let missing: Vec<&String> = recorded.difference(&granted).collect();
    if missing.is_empty() {
        passed += 1;
        println!(
            "  ok    all {} recorded actions are granted",
            recorded.len()
        );
    } else {
        failures.push(format!(
            "the suites called {} action(s) the policy does not grant (declare them in the \
             driver's iam_actions): {missing:?}",
            missing.len()
        ));
    }

    // Granted ⊆ recorded, for the services the suites called.
    let authorization_only: BTreeSet<&str> = AUTHORIZATION_ONLY.iter().map(|(a, _)| *a).collect();
    let ran: BTreeSet<&str> = recorded.iter().map(|a| prefix(a)).collect();
    let mut never: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for action in granted.difference(&recorded) {
        if !authorization_only.contains(action.as_str()) {
            never.entry(prefix(action)).or_default().push(action);
        }
    }
    let (unchecked, unexercised): (Vec<_>, Vec<_>) = never
        .into_iter()
        .partition(|(service, _)| !ran.contains(service));
    for (service, actions) in &unchecked {
        println!(
            "  note  no suite called {service}; its {} granted action(s) are not checked: {actions:?}",
            actions.len()
        );
    }
    // The policy holds exactly what the drivers declare for the calls their code makes (it is
    // generated from them); some of those calls happen only on rare paths (drift in a scaling
    // group's subnets, a role's trust policy) that no suite reaches yet. Listed, so the gap is
    // visible, but not a failure: failing would push toward dropping a needed permission.
    if unexercised.is_empty() {
        println!(
            "  ok    every granted action of {ran:?} was called (or is checked only inside another call)"
        );
    } else {
        for (service, actions) in unexercised {
            println!(
                "  note  granted {} {service} action(s) the code calls but no suite reached: {actions:?}",
                actions.len()
            );
        }
    }
    passed += 1;
    Ok((passed, failures))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, policy] = args.as_slice() else {
        eprintln!("usage: policy-check RECORD_DIR POLICY_JSON");
        return ExitCode::from(2);
    };
    match run(&PathBuf::from(dir), &PathBuf::from(policy)) {
        Ok((passed, failures)) => {
            for failure in &failures {
                println!("  FAIL  {failure}");
            }
            println!("policy: {passed} passed, {} failed", failures.len());
            if failures.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("policy-check: {error}");
            println!("policy: 0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}
