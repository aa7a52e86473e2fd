//! The four chat formats: one [`Message`] in the JSON each platform's
//! incoming webhook takes.
//!
//! - Slack: `text` (the notification and fallback line) plus `blocks`: a
//!   header, the facts as section fields, one mrkdwn section per list, the
//!   return in a code block, and a context line. Slack's limits are kept
//!   (header 150 characters, 10 fields per section, 3,000 per text).
//! - Teams: a `message` with one Adaptive Card (version 1.4, accepted by
//!   Teams workflows and incoming webhooks): a coloured title, a FactSet,
//!   lists as markdown, the return in a monospaced block.
//! - Teams connector (`teams_connector`): the legacy Office 365 connector
//!   `MessageCard` (title, theme colour, facts, markdown sections), for
//!   incoming webhooks created before Microsoft retired connectors; a
//!   Workflows webhook refuses it.
//! - DingTalk: a robot `markdown` message; `title` is what the notification shows.
//! - Feishu / Lark: an `interactive` card with a coloured header, the facts
//!   as short fields, lists as `lark_md`, and a note with the footer.

use serde_json::{json, Value};

use super::message::{Item, Message, Status};
use crate::salt::returns::truncate;

/// Slack mrkdwn needs `&`, `<` and `>` escaped, even inside code.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// How a list item's label is marked: inline code on Slack; bold elsewhere
/// (Teams, DingTalk and Feishu markdown have no inline code).
#[derive(Clone, Copy)]
enum Label {
    Code,
    Bold,
}

/// One list item as markdown: `` `label` text `` or `**label** text`.
fn item_md(item: &Item, label: Label, escape: fn(&str) -> String) -> String {
    if item.label.is_empty() {
        return escape(&item.text);
    }
    let l = match label {
        // A backtick would end the code span.
        Label::Code => format!("`{}`", escape(&item.label.replace('`', "'"))),
        Label::Bold => format!("**{}**", escape(&item.label.replace('*', "\\*"))),
    };
    if item.text.is_empty() {
        l
    } else {
        format!("{l} {}", escape(&item.text))
    }
}

fn no_escape(s: &str) -> String {
    s.to_owned()
}

/// The items of a section as a markdown list, with `bullet` before each.
fn list_md(
    items: &[Item],
    more: usize,
    bullet: &str,
    label: Label,
    escape: fn(&str) -> String,
) -> String {
    let mut s = String::new();
    for item in items {
        s.push_str(bullet);
        s.push_str(&item_md(item, label, escape));
        s.push('\n');
    }
    if more > 0 {
        s.push_str(&format!("{bullet}… and {more} more\n"));
    }
    s.trim_end().to_owned()
}

pub fn slack(m: &Message) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": truncate(&m.headline(), 150), "emoji": true}
    })];
    for chunk in m.facts.chunks(10) {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|(k, v)| {
                json!({"type": "mrkdwn", "text": truncate(&format!("*{}*\n{}", slack_escape(k), slack_escape(v)), 2000)})
            })
            .collect();
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    for sec in &m.sections {
        let text = format!(
            "*{}*\n{}",
            slack_escape(&sec.heading),
            list_md(&sec.items, sec.more, "• ", Label::Code, slack_escape)
        );
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&text, 3000)}}),
        );
    }
    if let Some(code) = &m.code {
        let text = format!(
            "*{}*\n```{}```",
            slack_escape(&code.heading),
            slack_escape(&truncate(&code.text, 2800))
        );
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": text}}));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": truncate(&slack_escape(&m.footer), 2000)}]
    }));
    json!({"text": m.headline(), "blocks": blocks})
}

pub fn teams(m: &Message) -> Value {
    let color = match m.status {
        Status::Ok => "Good",
        Status::Failed => "Attention",
        Status::Warning => "Warning",
        Status::Info => "Default",
    };
    let mut body = vec![json!({
        "type": "TextBlock", "text": m.headline(), "weight": "Bolder", "size": "Medium",
        "color": color, "wrap": true
    })];
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .map(|(k, v)| json!({"title": k, "value": v}))
            .collect();
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    for sec in &m.sections {
        body.push(json!({
            "type": "TextBlock", "text": sec.heading, "weight": "Bolder", "wrap": true, "spacing": "Medium"
        }));
        body.push(json!({
            "type": "TextBlock", "text": list_md(&sec.items, sec.more, "- ", Label::Bold, no_escape), "wrap": true
        }));
    }
    if let Some(code) = &m.code {
        body.push(json!({
            "type": "TextBlock", "text": code.heading, "weight": "Bolder", "wrap": true, "spacing": "Medium"
        }));
        body.push(
            json!({"type": "TextBlock", "text": code.text, "fontType": "Monospace", "wrap": true}),
        );
    }
    body.push(json!({
        "type": "TextBlock", "text": m.footer, "isSubtle": true, "size": "Small", "wrap": true, "spacing": "Medium"
    }));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "msteams": {"width": "Full"},
                "body": body
            }
        }]
    })
}

/// The legacy Office 365 connector card (`@type: MessageCard`), as the
/// connector reference documents it: `summary` is the notification text,
/// `themeColor` a hex colour, `sections` with `facts` and markdown `text`.
pub fn teams_connector(m: &Message) -> Value {
    let color = match m.status {
        Status::Ok => "2EB886",
        Status::Failed => "D13438",
        Status::Warning => "FFB900",
        Status::Info => "6264A7",
    };
    let mut sections = Vec::new();
    if !m.facts.is_empty() {
        let facts: Vec<Value> = m
            .facts
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        sections.push(json!({"facts": facts, "markdown": false}));
    }
    for sec in &m.sections {
        sections.push(json!({
            "activityTitle": sec.heading,
            "text": list_md(&sec.items, sec.more, "- ", Label::Bold, no_escape),
            "markdown": true
        }));
    }
    if let Some(code) = &m.code {
        // Connector markdown has no code block; `pre` keeps the layout.
        let escaped = code
            .text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        sections.push(json!({
            "activityTitle": code.heading,
            "text": format!("<pre>{escaped}</pre>"),
            "markdown": true
        }));
    }
    sections.push(json!({"text": m.footer, "markdown": false}));
    json!({
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": m.headline(),
        "themeColor": color,
        "title": m.headline(),
        "sections": sections
    })
}

pub fn dingtalk(m: &Message) -> Value {
    let mut text = format!("#### {}\n\n", m.headline());
    for (k, v) in &m.facts {
        text.push_str(&format!("- **{k}:** {v}\n"));
    }
    for sec in &m.sections {
        text.push_str(&format!(
            "\n**{}**\n\n{}\n",
            sec.heading,
            list_md(&sec.items, sec.more, "- ", Label::Bold, no_escape)
        ));
    }
    if let Some(code) = &m.code {
        let quoted: Vec<String> = code.text.lines().map(|l| format!("> {l}")).collect();
        let quoted = if quoted.is_empty() {
            "> ".to_owned()
        } else {
            quoted.join("\n")
        };
        text.push_str(&format!("\n**{}**\n\n{quoted}\n", code.heading));
    }
    text.push_str(&format!("\n###### {}\n", m.footer));
    json!({
        "msgtype": "markdown",
        "markdown": {"title": m.headline(), "text": text}
    })
}

pub fn feishu(m: &Message) -> Value {
    let template = match m.status {
        Status::Ok => "green",
        Status::Failed => "red",
        Status::Warning => "orange",
        Status::Info => "blue",
    };
    let mut elements = Vec::new();
    if !m.facts.is_empty() {
        let fields: Vec<Value> = m
            .facts
            .iter()
            .map(|(k, v)| {
                json!({"is_short": true, "text": {"tag": "lark_md", "content": format!("**{k}**\n{v}")}})
            })
            .collect();
        elements.push(json!({"tag": "div", "fields": fields}));
    }
    for sec in &m.sections {
        let content = format!(
            "**{}**\n{}",
            sec.heading,
            list_md(&sec.items, sec.more, "- ", Label::Bold, no_escape)
        );
        elements.push(json!({"tag": "div", "text": {"tag": "lark_md", "content": content}}));
    }
    if let Some(code) = &m.code {
        elements.push(json!({"tag": "div", "text": {"tag": "lark_md", "content": format!("**{}**", code.heading)}}));
        elements.push(json!({"tag": "div", "text": {"tag": "plain_text", "content": code.text}}));
    }
    elements.push(json!({"tag": "hr"}));
    elements.push(json!({"tag": "note", "elements": [{"tag": "plain_text", "content": m.footer}]}));
    json!({
        "msg_type": "interactive",
        "card": {
            "config": {"wide_screen_mode": true},
            "header": {"title": {"tag": "plain_text", "content": m.headline()}, "template": template},
            "elements": elements
        }
    })
}
