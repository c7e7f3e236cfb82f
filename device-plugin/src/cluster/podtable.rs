//! The pod table from a ConfigMap, watched through the API server: an edit is in force as soon as
//! the watch delivers it (well under a second), where the kubelet's volume projection lags by up
//! to its sync period. Contents go through the same validation and last-good rule as the file
//! mode ([`PodTableSource::offer`]); a rejected edit is also an Event on the ConfigMap listing
//! every problem.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};

use super::events::{Events, Kind};
use super::{ObjectName, PODTABLE_KEY};
use crate::podtable::{PodTableSource, RefreshOutcome};

/// The most of an Event note the problem list may take (the API caps a note at 1 KiB).
const NOTE_BUDGET: usize = 900;

/// What a watcher hands the agent after each applied change (the live re-apply hooks in here).
pub type OnChange = Arc<dyn Fn(&RefreshOutcome) + Send + Sync>;

/// Watches `cm` and offers its `podtable.json` to `source` until the task is dropped. Reconnects
/// with backoff; a relist that finds no ConfigMap offers "missing" (the last good table stays).
pub async fn watch(
    client: kube::Client,
    cm: ObjectName,
    source: Arc<std::sync::Mutex<PodTableSource>>,
    events: Option<Events>,
    on_change: Option<OnChange>,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &cm.namespace);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={}", cm.name));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    // Whether the current (re)list delivered the object.
    let mut listed = false;
    let mut last_error_logged = String::new();
    while let Some(ev) = stream.next().await {
        let (contents, obj): (Option<Option<Vec<u8>>>, Option<ObjectReference>) = match ev {
            Ok(watcher::Event::Init) => {
                listed = false;
                (None, None)
            }
            Ok(watcher::Event::InitApply(o) | watcher::Event::Apply(o)) => {
                listed = true;
                let r = reference(&cm, &o);
                (Some(contents_of(&o)), Some(r))
            }
            Ok(watcher::Event::Delete(o)) => (Some(None), Some(reference(&cm, &o))),
            Ok(watcher::Event::InitDone) if !listed => (Some(None), None),
            Ok(watcher::Event::InitDone) => (None, None),
            Err(e) => {
                let msg = e.to_string();
                if msg != last_error_logged {
                    tracing::warn!(configmap = %cm, error = %msg, "pod table watch failed; retrying, the table in force stays");
                    last_error_logged = msg;
                }
                (None, None)
            }
        };
        let Some(contents) = contents else { continue };
        last_error_logged.clear();
        let outcome = source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .offer(contents.as_deref());
        if let (RefreshOutcome::Rejected { problems, .. }, Some(ev)) = (&outcome, &events) {
            let regarding = obj.unwrap_or_else(|| Events::configmap(&cm.namespace, &cm.name));
            for note in notes(problems) {
                ev.emit(regarding.clone(), Kind::Warning, "PodTableRejected", note);
            }
        }
        if let Some(f) = &on_change {
            f(&outcome);
        }
    }
}

/// The table's bytes: `None` when the ConfigMap has no `podtable.json` key.
fn contents_of(cm: &ConfigMap) -> Option<Vec<u8>> {
    cm.data
        .as_ref()
        .and_then(|d| d.get(PODTABLE_KEY))
        .map(|s| s.as_bytes().to_vec())
}

/// The ConfigMap's reference with its UID (`kubectl describe` matches Events by UID).
fn reference(cm: &ObjectName, o: &ConfigMap) -> ObjectReference {
    let mut r = Events::configmap(&cm.namespace, &cm.name);
    r.uid = o.metadata.uid.clone();
    r
}

/// The problems as Event notes: as many per note as fit, every problem in some note, each note
/// saying which part of how many it is.
fn notes(problems: &[String]) -> Vec<String> {
    let mut chunks: Vec<Vec<&str>> = vec![Vec::new()];
    let mut used = 0;
    for p in problems {
        let cost = p.len() + 2;
        if used + cost > NOTE_BUDGET
            && let Some(last) = chunks.last()
            && !last.is_empty()
        {
            chunks.push(Vec::new());
            used = 0;
        }
        if let Some(last) = chunks.last_mut() {
            last.push(p);
        }
        used += cost;
    }
    let n = chunks.len();
    let total = problems.len();
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let head = if n == 1 {
                format!("pod table rejected, the last good table stays in force ({total} problem{}): ", if total == 1 { "" } else { "s" })
            } else {
                format!("pod table rejected, the last good table stays in force ({total} problems, part {}/{n}): ", i + 1)
            };
            head + &c.join("; ")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_lands_in_a_note_that_fits() {
        let problems: Vec<String> = (0..60)
            .map(|i| format!("network \"db-net\" pod \"default/db-{i}\": ips[0] \"10.0.0.300/24\" is not a CIDR"))
            .collect();
        let notes = notes(&problems);
        assert!(notes.len() > 1);
        for n in &notes {
            assert!(n.len() <= 1024, "{}", n.len());
        }
        for p in &problems {
            assert_eq!(
                notes.iter().filter(|n| n.contains(p.as_str())).count(),
                1,
                "{p}"
            );
        }
        assert!(notes[0].contains("part 1/"), "{}", notes[0]);
        let one = super::notes(&problems[..1]);
        assert_eq!(one.len(), 1);
        assert!(one[0].contains("(1 problem): network"), "{}", one[0]);
    }
}
