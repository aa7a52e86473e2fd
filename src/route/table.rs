//! The compiled route table: which routes, and so which sinks, an event
//! goes to.
//!
//! Every tag glob of every route goes into one [`TagIndex`] and every tag
//! regex into one `RegexSet`, so finding the routes whose tag matches costs
//! about the same with 10,000 routes as with 10. Only those candidates,
//! in file order, have their `where` predicates evaluated, and the event's
//! data is parsed only when one of them needs it. The first matching route
//! wins unless it says `continue: true`.

use std::sync::Arc;
use std::time::Instant;

use regex::bytes::RegexSet;

use super::config::DropConfig;
use super::predicate::Predicate;
use super::route_dedup::RecentKeys;
use super::tag_index::TagIndex;
use crate::event::partial::WantedKeys;
use crate::event::Event;

static FIND_JOB: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new("saltutil.find_job"));

/// One compiled route.
#[derive(Debug)]
pub(crate) struct Route {
    /// Shared with every event it sends (`Routing::sink_routes`).
    pub name: Arc<str>,
    pub where_: Option<Predicate>,
    pub to: Vec<String>,
    pub continue_: bool,
    /// Keys seen by the route's `dedup`; its template is in `templates`
    /// under the route's name.
    pub dedup: Option<RecentKeys>,
    /// `complete_trimmed`: a trimmed return is completed before it is sent.
    pub complete_trimmed: bool,
}

/// Every route's tag patterns: globs in one index, regexes in one set,
/// each with the route it belongs to.
pub(crate) struct TagMatchers {
    pub globs: TagIndex,
    pub glob_owner: Vec<usize>,
    pub regexes: RegexSet,
    pub regex_owner: Vec<usize>,
}

/// The whole table: the routes, and what happens to events none matches.
#[derive(Debug)]
pub struct RouteTable {
    pub(crate) routes: Vec<Route>,
    pub(crate) globs: TagIndex,
    /// For each glob in `globs`: its route.
    pub(crate) glob_owner: Vec<usize>,
    pub(crate) regexes: RegexSet,
    pub(crate) regex_owner: Vec<usize>,
    /// Routes without any tag filter: candidates for every event.
    pub(crate) untagged: Vec<usize>,
    pub(crate) drop: DropConfig,
    pub(crate) unmatched: Vec<String>,
    pub(crate) templates: minijinja::Environment<'static>,
    /// The top-level data keys every `where` reads, or `None` when some
    /// predicate may read anything (see `partial`).
    where_keys: Option<WantedKeys>,
    scratch: Vec<usize>,
    hits: Vec<usize>,
}

/// Where one event goes, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routing {
    /// Set when a noise preset dropped the event before routing (`drop.find_job`, ...).
    pub dropped_by: Option<String>,
    /// Routes that matched, in order.
    pub matches: Vec<RouteMatch>,
    /// The sinks the event goes to, each once, in route order.
    pub sinks: Vec<String>,
    /// For each of `sinks`, the route that sent the event there (the
    /// table's own name, shared: no copy per event).
    pub sink_routes: Vec<Arc<str>>,
    /// True when no route matched and `unmatched` decided.
    pub unmatched: bool,
}

/// One route that matched an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub route: String,
    /// Which tag pattern matched (`glob salt/job/*/ret/*`), or none for an untagged route.
    pub tag: Option<String>,
    /// The `where` leaves that held.
    pub predicates: Vec<String>,
    /// Set when the route's dedup dropped it: the key.
    pub deduplicated: Option<String>,
}

impl RouteTable {
    pub(crate) fn new(
        routes: Vec<Route>,
        tags: TagMatchers,
        drop: DropConfig,
        unmatched: Vec<String>,
        templates: minijinja::Environment<'static>,
    ) -> Self {
        let TagMatchers {
            globs,
            glob_owner,
            regexes,
            regex_owner,
        } = tags;
        let mut tagged = vec![false; routes.len()];
        glob_owner.iter().for_each(|r| tagged[*r] = true);
        regex_owner.iter().for_each(|r| tagged[*r] = true);
        let untagged = (0..routes.len()).filter(|i| !tagged[*i]).collect();
        let mut keys = Vec::new();
        let where_keys = routes
            .iter()
            .filter_map(|r| r.where_.as_ref())
            .all(|w| w.top_keys(&mut keys))
            .then(|| WantedKeys::new(keys));
        RouteTable {
            routes,
            globs,
            glob_owner,
            regexes,
            regex_owner,
            untagged,
            drop,
            unmatched,
            templates,
            where_keys,
            scratch: Vec::new(),
            hits: Vec::new(),
        }
    }

    /// The routes' names, in order.
    pub fn route_names(&self) -> impl Iterator<Item = &str> {
        self.routes.iter().map(|r| &*r.name)
    }

    /// Decides where `ev` goes. With `explain`, records which pattern and
    /// which predicates matched (a little slower).
    pub fn route(&mut self, ev: &Event, now: Instant, explain: bool) -> Routing {
        let mut out = Routing::default();
        if let Some(preset) = self.noise(ev) {
            out.dropped_by = Some(preset.to_owned());
            return out;
        }
        let tag = ev.tag();
        let mut candidates = std::mem::take(&mut self.scratch);
        candidates.clear();
        self.hits.clear();
        self.globs.matches_into(tag, &mut self.hits);
        candidates.extend(self.hits.iter().map(|&g| self.glob_owner[g]));
        // `matches` walks every pattern slot: ask the cheap question first.
        if !self.regex_owner.is_empty() && self.regexes.is_match(tag.as_bytes()) {
            candidates.extend(
                self.regexes
                    .matches(tag.as_bytes())
                    .into_iter()
                    .map(|r| self.regex_owner[r]),
            );
        }
        candidates.extend_from_slice(&self.untagged);
        candidates.sort_unstable();
        candidates.dedup();
        // The data, parsed at most once and only as far as `where` reads it.
        let mut partial: Option<serde_json::Value> = None;
        for &i in &candidates {
            let tag_why = if explain {
                self.which_tag(i, tag)
            } else {
                None
            };
            let route = &mut self.routes[i];
            let mut why = Vec::new();
            if let Some(w) = &route.where_ {
                let data = match (&self.where_keys, ev.data_if_parsed()) {
                    (Some(keys), None) if !explain => {
                        &*partial.get_or_insert_with(|| keys.parse(ev.data_json()))
                    }
                    _ => ev.data(),
                };
                if !w.explain(data, explain.then_some(&mut why)) {
                    continue;
                }
            }
            let deduplicated = match &mut route.dedup {
                Some(recent) => {
                    let key = render_key(&self.templates, &route.name, ev);
                    recent.check_and_insert(&key, now).then_some(key)
                }
                None => None,
            };
            if deduplicated.is_none() {
                for s in &route.to {
                    if !out.sinks.contains(s) {
                        out.sinks.push(s.clone());
                        out.sink_routes.push(Arc::clone(&route.name));
                    }
                }
            }
            out.matches.push(RouteMatch {
                route: route.name.to_string(),
                tag: tag_why,
                predicates: why,
                deduplicated,
            });
            if !route.continue_ {
                break;
            }
        }
        self.scratch = candidates;
        if out.matches.is_empty() {
            out.unmatched = true;
            out.sinks = self.unmatched.clone();
            out.sink_routes = vec![Arc::from("unmatched"); out.sinks.len()];
        } else if out.sinks.is_empty() && out.matches.iter().all(|m| m.deduplicated.is_some()) {
            out.dropped_by = out.matches.last().map(|m| format!("dedup:{}", m.route));
        }
        out
    }

    /// Whether some route completes trimmed returns (`complete_trimmed`).
    pub fn completes_trimmed(&self) -> bool {
        self.routes.iter().any(|r| r.complete_trimmed)
    }

    /// Moves out of `routing` the sinks (and matches) of the routes that
    /// complete trimmed returns: where the completed event goes later.
    /// `None` when no such route matched.
    pub fn split_completing(&self, routing: &mut Routing) -> Option<Routing> {
        let completes = |name: &str| {
            self.routes
                .iter()
                .any(|r| r.complete_trimmed && &*r.name == name)
        };
        if !routing.sink_routes.iter().any(|r| completes(r)) {
            return None;
        }
        let mut later = Routing::default();
        let mut i = 0;
        while i < routing.sinks.len() {
            if completes(&routing.sink_routes[i]) {
                later.sinks.push(routing.sinks.remove(i));
                later.sink_routes.push(routing.sink_routes.remove(i));
            } else {
                i += 1;
            }
        }
        let (moved, kept) = std::mem::take(&mut routing.matches)
            .into_iter()
            .partition(|m| completes(&m.route));
        later.matches = moved;
        routing.matches = kept;
        Some(later)
    }

    /// The noise preset that drops `ev`, if any.
    fn noise(&self, ev: &Event) -> Option<&'static str> {
        let tag = ev.tag();
        if self.drop.auth && tag == "salt/auth" {
            return Some("drop.auth");
        }
        if self.drop.minion_refresh && tag.starts_with("minion/refresh/") {
            return Some("drop.minion_refresh");
        }
        if self.drop.find_job
            && tag.starts_with("salt/job/")
            && (tag.ends_with("/new") || tag.ends_with("/publish") || tag.contains("/ret/"))
            // Cheap text check first: most job events are not find_job jobs.
            && FIND_JOB.find(ev.data_json().as_bytes()).is_some()
            && ev.data()["fun"] == "saltutil.find_job"
        {
            return Some("drop.find_job");
        }
        None
    }

    fn which_tag(&self, route: usize, tag: &str) -> Option<String> {
        let mut hits = Vec::new();
        self.globs.matches_into(tag, &mut hits);
        hits.sort_unstable();
        let by_glob = hits
            .into_iter()
            .find(|g| self.glob_owner[*g] == route)
            .map(|g| format!("glob {:?}", self.globs.glob(g).as_str()));
        by_glob.or_else(|| {
            self.regexes
                .matches(tag.as_bytes())
                .into_iter()
                .find(|r| self.regex_owner[*r] == route)
                .map(|r| format!("regex {:?}", self.regexes.patterns()[r]))
        })
    }
}

/// Renders a route's dedup key; a template error becomes part of the key,
/// so that a broken template never drops events by colliding keys.
fn render_key(env: &minijinja::Environment<'static>, route: &str, ev: &Event) -> String {
    let ctx = minijinja::context! { tag => ev.tag(), data => minijinja::Value::from(minijinja::value::Serde(ev.data())) };
    match env.get_template(route).and_then(|t| t.render(ctx)) {
        Ok(k) => k,
        Err(e) => format!("<template error: {e}>:{}", ev.data_json()),
    }
}
