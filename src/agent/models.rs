//! Which model answers: the configured default, aliases, per-request choices, the router,
//! the failover order with provider health, and the provider clients themselves. The
//! settings can be swapped at runtime (`models.set`, config reload) without a restart.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::providers::{self, Provider};
use super::router::{self, Decision, Tier};
use crate::config::{AgentConfig, ProviderConfig};
use crate::users::Permissions;

pub struct Models {
    settings: RwLock<Arc<Settings>>,
    providers: Mutex<HashMap<String, Arc<dyn Provider>>>,
    /// Providers that failed recently: skipped until the instant, with the backoff used.
    unhealthy: Mutex<HashMap<String, (Instant, Duration)>>,
}

/// The part of the configuration that can change while running.
pub struct Settings {
    pub agent: AgentConfig,
    pub providers: BTreeMap<String, ProviderConfig>,
    pub permissions: Permissions,
}

/// A `<provider>/<model>` pair.
pub type ModelRef = (String, String);

impl Models {
    pub fn new(agent: AgentConfig, providers: BTreeMap<String, ProviderConfig>, permissions: Permissions) -> Models {
        Models {
            settings: RwLock::new(Arc::new(Settings { agent, providers, permissions })),
            providers: Mutex::new(HashMap::new()),
            unhealthy: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces the settings (config reload); provider clients are rebuilt on next use.
    pub fn replace(&self, agent: AgentConfig, providers: BTreeMap<String, ProviderConfig>, permissions: Permissions) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Settings { agent, providers, permissions });
        self.providers.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Switches the default model for every later request.
    pub fn set_default(&self, model: &str) {
        let mut s = self.settings.write().unwrap_or_else(|p| p.into_inner());
        let mut agent = s.agent.clone();
        agent.model = model.to_string();
        *s = Arc::new(Settings { agent, providers: s.providers.clone(), permissions: s.permissions.clone() });
    }

    /// Splits `<provider>/<model>` after applying aliases; `None` when nothing is configured.
    pub fn resolve(&self, requested: Option<&str>) -> Option<ModelRef> {
        resolve_in(&self.settings().agent, requested)
    }

    /// The model for a message that names none: the router's pick when it is on.
    pub fn route(&self, message: &str) -> (Option<ModelRef>, Option<Decision>) {
        let s = self.settings();
        let default = resolve_in(&s.agent, None);
        let r = &s.agent.router;
        if !r.enabled {
            return (default, None);
        }
        let (tier, mut reason) = router::classify(message);
        let spec = match tier {
            Tier::Cheap => &r.cheap,
            Tier::Standard => &r.standard,
            Tier::Strong => &r.strong,
        };
        let chosen = match resolve_in(&s.agent, Some(spec)).filter(|_| !spec.is_empty()) {
            Some(m) => Some(m),
            None => {
                if !spec.is_empty() {
                    reason.push_str(&format!("; {spec:?} is not a model or alias, so the default answers"));
                }
                default
            }
        };
        let decision = chosen.as_ref().map(|(p, m)| Decision { tier, reason, model: format!("{p}/{m}") });
        (chosen, decision)
    }

    pub fn provider(&self, name: &str) -> Result<Arc<dyn Provider>, String> {
        let mut cache = self.providers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = cache.get(name) {
            return Ok(p.clone());
        }
        let settings = self.settings();
        let p = providers::build(name, settings.providers.get(name), &|var| std::env::var(var).ok())?;
        cache.insert(name.to_string(), p.clone());
        Ok(p)
    }

    /// The chosen model first, then the fallbacks; healthy providers first.
    pub fn candidates(&self, primary: ModelRef) -> Vec<ModelRef> {
        let s = self.settings();
        let mut all = vec![primary];
        for f in &s.agent.fallbacks {
            if let Some(c) = resolve_in(&s.agent, Some(f))
                && !all.contains(&c)
            {
                all.push(c);
            }
        }
        let unhealthy = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let (healthy, sick): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(p, _)| unhealthy.get(p).is_none_or(|(until, _)| *until <= now));
        healthy.into_iter().chain(sick).collect()
    }

    /// Skips the provider for 30 s, doubling on each further failure up to 10 min.
    pub fn mark_unhealthy(&self, provider: &str) {
        let mut unhealthy = self.unhealthy.lock().unwrap_or_else(|p| p.into_inner());
        let backoff =
            unhealthy.get(provider).map_or(Duration::from_secs(30), |(_, b)| (*b * 2).min(Duration::from_secs(600)));
        unhealthy.insert(provider.to_string(), (Instant::now() + backoff, backoff));
    }

    pub fn mark_healthy(&self, provider: &str) {
        self.unhealthy.lock().unwrap_or_else(|p| p.into_inner()).remove(provider);
    }
}

fn resolve_in(agent: &AgentConfig, requested: Option<&str>) -> Option<ModelRef> {
    let spec = requested.filter(|s| !s.is_empty()).unwrap_or(&agent.model);
    let spec = agent.aliases.get(spec).map(String::as_str).unwrap_or(spec);
    let (provider, model) = spec.split_once('/')?;
    (!provider.is_empty() && !model.is_empty()).then(|| (provider.to_string(), model.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouterConfig;

    fn models(router: RouterConfig) -> Models {
        let agent = AgentConfig {
            model: "anthropic/claude-sonnet-4-5".into(),
            max_steps: 8,
            max_tokens: 1024,
            tool_timeout_ms: 1000,
            history_budget_tokens: 0,
            fallbacks: vec!["openai/gpt-4o-mini".into()],
            aliases: [("fast".to_string(), "groq/llama-3.1-8b-instant".to_string())].into(),
            router,
        };
        Models::new(agent, BTreeMap::new(), Permissions::default())
    }

    #[test]
    fn aliases_and_defaults_resolve() {
        let m = models(RouterConfig::default());
        assert_eq!(m.resolve(None), Some(("anthropic".into(), "claude-sonnet-4-5".into())));
        assert_eq!(m.resolve(Some("fast")), Some(("groq".into(), "llama-3.1-8b-instant".into())));
        assert_eq!(m.resolve(Some("nonsense")), None);
        m.set_default("fast");
        assert_eq!(m.resolve(None), Some(("groq".into(), "llama-3.1-8b-instant".into())));
    }

    #[test]
    fn the_router_maps_tiers_to_models_and_falls_back_to_the_default() {
        let on = RouterConfig { enabled: true, cheap: "fast".into(), standard: String::new(), strong: "nope".into() };
        let m = models(on);
        let (chosen, d) = m.route("hi");
        assert_eq!(chosen.unwrap().0, "groq");
        assert_eq!(d.unwrap().tier, Tier::Cheap);
        let (chosen, d) = m.route("think hard: is P = NP?");
        assert_eq!(chosen.unwrap().0, "anthropic");
        let d = d.unwrap();
        assert_eq!(d.tier, Tier::Strong);
        assert!(d.reason.contains("not a model or alias"), "{}", d.reason);
        assert_eq!(models(RouterConfig::default()).route("hi").1, None, "off by default");
    }

    #[test]
    fn a_failed_provider_goes_to_the_back_of_the_line() {
        let m = models(RouterConfig::default());
        let primary = m.resolve(None).unwrap();
        m.mark_unhealthy("anthropic");
        assert_eq!(m.candidates(primary.clone())[0].0, "openai");
        m.mark_healthy("anthropic");
        assert_eq!(m.candidates(primary)[0].0, "anthropic");
    }
}
