//! Chat presets: `preset: slack | teams | teams_connector | dingtalk | feishu`
//! writes the body
//! itself, a readable message about the event, so a chat webhook needs no
//! template.
//!
//! [`message::build`] decides what to say (job return, state failure, job
//! summary, or any other event) and [`chat`] says it in each platform's JSON.
//! Signing of DingTalk and Feishu robots happens in the sink, because it
//! depends on the time of each attempt.

pub mod chat;
pub mod message;

use serde_json::Value;

use super::config::Preset;
use crate::outgoing::Outgoing;

/// The request body of `preset` for one event, before any signature.
pub fn render(preset: Preset, o: &Outgoing) -> Value {
    let m = message::build(o);
    match preset {
        Preset::Slack => chat::slack(&m),
        Preset::Teams => chat::teams(&m),
        Preset::TeamsConnector => chat::teams_connector(&m),
        Preset::Dingtalk => chat::dingtalk(&m),
        Preset::Feishu => chat::feishu(&m),
    }
}
