//! Kubernetes Events (`events.k8s.io/v1`, served since 1.19) on the objects an operator looks at:
//! the pod table ConfigMap (a rejected edit) and pods (a fixed IP refused, fenced, restored).
//!
//! An Event is a courtesy, never a step of the work: publishing runs in its own task with a
//! timeout, and a failure is logged, not returned. Each call creates a new Event (no series
//! folding): two different rejected edits must each show their own problems.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};

use super::REQUEST_TIMEOUT;

/// `reportingController` of every Event we publish.
pub const CONTROLLER: &str = "sriov.example.com/device-plugin";

/// Attempts (each up to [`REQUEST_TIMEOUT`]) and the pause between them, for [`Events::emit`].
const EMIT_TRIES: u32 = 8;
const EMIT_RETRY: std::time::Duration = std::time::Duration::from_secs(3);

/// The API server caps an Event's note at 1 KiB.
const MAX_NOTE: usize = 1024;

/// Normal or Warning, as `kubectl get events` shows in TYPE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Routine: something was done as asked.
    Normal,
    /// Needs attention: something was refused or failed.
    Warning,
}

/// Publishes Events as this node's agent (`reportingInstance` = the node name).
#[derive(Clone)]
pub struct Events {
    client: kube::Client,
    instance: String,
}

impl Events {
    /// Events reported by `node`'s agent.
    pub fn new(client: kube::Client, node: &str) -> Self {
        Events {
            client,
            instance: format!("{CONTROLLER}-{node}"),
        }
    }

    /// The reference of a pod, for [`Events::emit`].
    pub fn pod(namespace: &str, name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    /// The reference of a ConfigMap, for [`Events::emit`].
    pub fn configmap(namespace: &str, name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("ConfigMap".into()),
            namespace: Some(namespace.into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }
    }

    /// Publishes in the background (the caller never waits on the API server for an Event),
    /// retrying for about a minute: the Event that says "fenced" is written while the API server
    /// is unreachable, and is worth delivering once it answers again.
    pub fn emit(&self, regarding: ObjectReference, kind: Kind, reason: &str, note: String) {
        let (me, reason) = (self.clone(), reason.to_string());
        tokio::spawn(async move {
            let mut last = String::new();
            for _ in 0..EMIT_TRIES {
                match me.publish(&regarding, kind, &reason, &note).await {
                    Ok(()) => return,
                    Err(e) => last = e,
                }
                tokio::time::sleep(EMIT_RETRY).await;
            }
            tracing::warn!(error = %last, %reason, object = ?regarding.name, "could not publish an Event");
        });
    }

    /// Publishes and waits (at most [`REQUEST_TIMEOUT`]).
    pub async fn publish(
        &self,
        regarding: &ObjectReference,
        kind: Kind,
        reason: &str,
        note: &str,
    ) -> Result<(), String> {
        let ns = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let now = Timestamp::now();
        let ev = Event {
            metadata: ObjectMeta {
                name: Some(format!(
                    "{}.{:x}",
                    regarding.name.as_deref().unwrap_or("sriov"),
                    now.as_nanosecond()
                )),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            event_time: Some(MicroTime(now)),
            type_: Some(match kind {
                Kind::Normal => "Normal".into(),
                Kind::Warning => "Warning".into(),
            }),
            reason: Some(reason.to_string()),
            action: Some(reason.to_string()),
            note: Some(truncate(note)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(CONTROLLER.into()),
            reporting_instance: Some(self.instance.clone()),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        match tokio::time::timeout(REQUEST_TIMEOUT, api.create(&PostParams::default(), &ev)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer in {REQUEST_TIMEOUT:?}")),
        }
    }
}

/// `note` cut to the API server's limit at a character boundary, saying it was cut.
fn truncate(note: &str) -> String {
    if note.len() <= MAX_NOTE {
        return note.to_string();
    }
    const MORE: &str = " …(truncated)";
    let mut end = MAX_NOTE - MORE.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MORE}", &note[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_fit_the_api_limit_and_say_they_were_cut() {
        assert_eq!(truncate("short"), "short");
        let long = "é".repeat(2000);
        let t = truncate(&long);
        assert!(t.len() <= MAX_NOTE, "{}", t.len());
        assert!(t.ends_with("…(truncated)"));
    }
}
