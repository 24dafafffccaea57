//! Plans and the call limit a company gets from them.
//!
//! A plan either gives a number of calls **per entitlement unit** (the free plan: 100,000
//! calls per machine or app configured, per period) or a **flat** number of calls per
//! company (the paid "API Access" plan: 1,000,000 per period). A plan marked `default`
//! applies to every company; other plans apply to the companies subscribed to them. A
//! company's limit is the highest limit among the plans that apply to it — unless support
//! staff set an explicit override, which wins whether it is higher or lower.
//!
//! Plans and their numbers come from configuration:
//!
//! ```
//! use tollgate_quota::{Company, Plans};
//!
//! let plans: Plans = toml::from_str(r#"
//!     [[plans]]
//!     name = "free"
//!     calls_per_unit = 100_000
//!     default = true
//!
//!     [[plans]]
//!     name = "API Access"
//!     calls = 1_000_000
//! "#).unwrap();
//!
//! // 5 machines + 10 apps on the free plan: 100,000 x 15 = 1,500,000 calls per period,
//! // more than "API Access" would give, so the free plan decides even if subscribed.
//! let acme = Company::new("acme").with_units(5, 10).with_subscription("API Access");
//! let limit = plans.limit_for(&acme).unwrap();
//! assert_eq!(limit.calls, 1_500_000);
//! assert_eq!(limit.source.to_string(), "plan free");
//!
//! // One machine: the free plan gives 100,000, the paid plan 1,000,000.
//! let small = Company::new("small").with_units(1, 0).with_subscription("API Access");
//! assert_eq!(plans.limit_for(&small).unwrap().calls, 1_000_000);
//! ```

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// How a plan counts calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum PlanKind {
    /// `calls_per_unit` calls per period for every entitlement unit (machine or app).
    PerUnit {
        /// Calls per unit per period.
        calls_per_unit: u64,
    },
    /// `calls` calls per period for the whole company.
    Flat {
        /// Calls per period.
        calls: u64,
    },
}

/// A named plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Plan {
    /// The plan's name, as companies subscribe to it and as notices name it.
    pub name: String,
    /// How it counts calls.
    pub kind: PlanKind,
    /// Whether it applies to every company without a subscription (the free plan).
    pub default: bool,
}

impl Plan {
    /// The calls per period this plan gives `company`.
    pub fn calls_for(&self, company: &Company) -> Result<u64, PlanError> {
        match self.kind {
            PlanKind::Flat { calls } => Ok(calls),
            PlanKind::PerUnit { calls_per_unit } => company
                .units()
                .and_then(|u| u.checked_mul(calls_per_unit))
                .ok_or_else(|| PlanError::Overflow {
                    plan: self.name.clone(),
                    company: company.id.clone(),
                }),
        }
    }
}

/// The configured set of plans. Build it with [`Plans::new`] or deserialize it from a
/// table with a `plans` array (see the [module docs](self)); both validate it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Plans {
    plans: Vec<Plan>,
}

/// What a company's limit came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// The named plan gave the highest limit.
    Plan(String),
    /// Support staff set this company's limit explicitly.
    Override,
}

impl fmt::Display for LimitSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitSource::Plan(name) => write!(f, "plan {name}"),
            LimitSource::Override => f.write_str("override"),
        }
    }
}

/// A company's call limit per period, and where it came from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct QuotaLimit {
    /// Calls per period.
    pub calls: u64,
    /// The plan (or override) that gave it.
    pub source: LimitSource,
}

/// A company as the quota sees it: its entitlement units, its subscriptions and an
/// optional explicit limit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Company {
    /// The company's identifier.
    pub id: String,
    /// Machines configured.
    #[serde(default)]
    pub machines: u64,
    /// Apps configured.
    #[serde(default)]
    pub apps: u64,
    /// Names of the non-default plans the company subscribed to.
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// An explicit limit set by support staff; it replaces the plans' limit.
    #[serde(default)]
    pub limit_override: Option<u64>,
}

impl Company {
    /// A company with no units, no subscriptions and no override.
    pub fn new(id: impl Into<String>) -> Self {
        Company {
            id: id.into(),
            ..Company::default()
        }
    }

    /// The same company with `machines` machines and `apps` apps configured.
    pub fn with_units(mut self, machines: u64, apps: u64) -> Self {
        self.machines = machines;
        self.apps = apps;
        self
    }

    /// The same company also subscribed to `plan`.
    pub fn with_subscription(mut self, plan: impl Into<String>) -> Self {
        self.subscriptions.push(plan.into());
        self
    }

    /// The same company with an explicit limit.
    pub fn with_override(mut self, calls: u64) -> Self {
        self.limit_override = Some(calls);
        self
    }

    /// Entitlement units: machines plus apps (`None` if that overflows).
    pub fn units(&self) -> Option<u64> {
        self.machines.checked_add(self.apps)
    }
}

/// Why plans or a company's limit are invalid.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PlanError {
    /// No plan is configured.
    NoPlans,
    /// Two plans share a name.
    DuplicateName(String),
    /// A plan gives zero calls.
    ZeroCalls(String),
    /// A plan's name is empty.
    EmptyName,
    /// A company subscribes to a plan that is not configured.
    UnknownPlan {
        /// The company.
        company: String,
        /// The plan it names.
        plan: String,
    },
    /// A company subscribes to a default plan, which applies anyway (a configuration slip
    /// worth reporting).
    SubscribedToDefault {
        /// The company.
        company: String,
        /// The default plan it names.
        plan: String,
    },
    /// No plan applies to the company (no default plan and no subscription) and it has no
    /// override.
    NoApplicablePlan(String),
    /// `calls_per_unit x units` does not fit in `u64`.
    Overflow {
        /// The plan.
        plan: String,
        /// The company.
        company: String,
    },
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanError::NoPlans => f.write_str("no plans are configured"),
            PlanError::DuplicateName(n) => write!(f, "two plans are named {n:?}"),
            PlanError::ZeroCalls(n) => write!(f, "plan {n:?} gives zero calls"),
            PlanError::EmptyName => f.write_str("a plan has an empty name"),
            PlanError::UnknownPlan { company, plan } => {
                write!(f, "company {company:?} subscribes to unknown plan {plan:?}")
            }
            PlanError::SubscribedToDefault { company, plan } => write!(
                f,
                "company {company:?} subscribes to {plan:?}, which already applies to every company"
            ),
            PlanError::NoApplicablePlan(c) => write!(
                f,
                "no plan applies to company {c:?}: configure a default plan, a subscription or an override"
            ),
            PlanError::Overflow { plan, company } => write!(
                f,
                "plan {plan:?} gives company {company:?} more calls than fit in 64 bits"
            ),
        }
    }
}

impl std::error::Error for PlanError {}

impl Plans {
    /// Validated plans: at least one, unique non-empty names, no plan giving zero calls.
    pub fn new(plans: Vec<Plan>) -> Result<Self, PlanError> {
        if plans.is_empty() {
            return Err(PlanError::NoPlans);
        }
        let mut names = HashSet::new();
        for p in &plans {
            if p.name.trim().is_empty() {
                return Err(PlanError::EmptyName);
            }
            if !names.insert(p.name.as_str()) {
                return Err(PlanError::DuplicateName(p.name.clone()));
            }
            let zero = match p.kind {
                PlanKind::PerUnit { calls_per_unit } => calls_per_unit == 0,
                PlanKind::Flat { calls } => calls == 0,
            };
            if zero {
                return Err(PlanError::ZeroCalls(p.name.clone()));
            }
        }
        Ok(Plans { plans })
    }

    /// The plans of the API policy tollgate was built for: `free`, the default, with
    /// 100,000 calls per machine or app, and `API Access` with 1,000,000 calls per company.
    pub fn standard() -> Self {
        Plans::new(vec![
            Plan {
                name: "free".into(),
                kind: PlanKind::PerUnit {
                    calls_per_unit: 100_000,
                },
                default: true,
            },
            Plan {
                name: "API Access".into(),
                kind: PlanKind::Flat { calls: 1_000_000 },
                default: false,
            },
        ])
        .expect("the standard plans are valid")
    }

    /// The configured plans, in configuration order.
    pub fn iter(&self) -> impl Iterator<Item = &Plan> {
        self.plans.iter()
    }

    /// The plan named `name`.
    pub fn get(&self, name: &str) -> Option<&Plan> {
        self.plans.iter().find(|p| p.name == name)
    }

    /// Checks that every subscription of `company` names a configured, non-default plan.
    pub fn validate_company(&self, company: &Company) -> Result<(), PlanError> {
        for s in &company.subscriptions {
            match self.get(s) {
                None => {
                    return Err(PlanError::UnknownPlan {
                        company: company.id.clone(),
                        plan: s.clone(),
                    })
                }
                Some(p) if p.default => {
                    return Err(PlanError::SubscribedToDefault {
                        company: company.id.clone(),
                        plan: s.clone(),
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The plans that apply to `company`: the default ones and its subscriptions.
    pub fn applicable<'a>(&'a self, company: &'a Company) -> impl Iterator<Item = &'a Plan> {
        self.plans
            .iter()
            .filter(move |p| p.default || company.subscriptions.contains(&p.name))
    }

    /// The company's limit per period: its override if set, else the highest limit among
    /// the plans that apply to it (on a tie, the first configured plan).
    pub fn limit_for(&self, company: &Company) -> Result<QuotaLimit, PlanError> {
        self.validate_company(company)?;
        if let Some(calls) = company.limit_override {
            return Ok(QuotaLimit {
                calls,
                source: LimitSource::Override,
            });
        }
        let mut best: Option<QuotaLimit> = None;
        for p in self.applicable(company) {
            let calls = p.calls_for(company)?;
            if best.as_ref().is_none_or(|b| calls > b.calls) {
                best = Some(QuotaLimit {
                    calls,
                    source: LimitSource::Plan(p.name.clone()),
                });
            }
        }
        best.ok_or_else(|| PlanError::NoApplicablePlan(company.id.clone()))
    }

    /// The smallest configured plan that would give `company` at least `used` calls per
    /// period and that it does not have already: what an overage notice suggests to the
    /// administrator. A default plan (it applies to every company) and a plan the
    /// company subscribes to are never suggested. `None` if no other plan would cover
    /// that usage. Plans whose limit overflows are skipped.
    pub fn suggest_plan(&self, company: &Company, used: u64) -> Option<&Plan> {
        self.plans
            .iter()
            .filter(|p| !p.default && !company.subscriptions.contains(&p.name))
            .filter_map(|p| p.calls_for(company).ok().map(|c| (c, p)))
            .filter(|(c, _)| *c >= used)
            .min_by_key(|(c, _)| *c)
            .map(|(_, p)| p)
    }
}

impl<'de> Deserialize<'de> for Plans {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct RawPlan {
            name: String,
            #[serde(default)]
            calls_per_unit: Option<u64>,
            #[serde(default)]
            calls: Option<u64>,
            #[serde(default)]
            default: bool,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            plans: Vec<RawPlan>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let plans = raw
            .plans
            .into_iter()
            .map(|p| {
                let kind = match (p.calls_per_unit, p.calls) {
                    (Some(calls_per_unit), None) => PlanKind::PerUnit { calls_per_unit },
                    (None, Some(calls)) => PlanKind::Flat { calls },
                    _ => {
                        return Err(de::Error::custom(format!(
                            "plan {:?} must set exactly one of `calls_per_unit` and `calls`",
                            p.name
                        )))
                    }
                };
                Ok(Plan {
                    name: p.name,
                    kind,
                    default: p.default,
                })
            })
            .collect::<Result<Vec<_>, D::Error>>()?;
        Plans::new(plans).map_err(de::Error::custom)
    }
}

#[cfg(all(test, not(tollgate_loom)))]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_the_policy() {
        let plans = Plans::standard();
        let c = Company::new("c").with_units(5, 10);
        assert_eq!(
            plans.limit_for(&c).unwrap(),
            QuotaLimit {
                calls: 1_500_000,
                source: LimitSource::Plan("free".into())
            }
        );
    }

    #[test]
    fn the_highest_applicable_plan_wins_and_overrides_win_both_ways() {
        let plans = Plans::standard();
        let c = Company::new("c").with_units(2, 1);
        assert_eq!(plans.limit_for(&c).unwrap().calls, 300_000);
        let paid = c.clone().with_subscription("API Access");
        let l = plans.limit_for(&paid).unwrap();
        assert_eq!(
            (l.calls, l.source.to_string()),
            (1_000_000, "plan API Access".into())
        );
        let big = Company::new("big")
            .with_units(20, 0)
            .with_subscription("API Access");
        assert_eq!(plans.limit_for(&big).unwrap().calls, 2_000_000);
        let lowered = big.clone().with_override(10);
        assert_eq!(
            plans.limit_for(&lowered).unwrap(),
            QuotaLimit {
                calls: 10,
                source: LimitSource::Override
            }
        );
        // A company with no units still gets the plans' limits (zero on the free plan).
        assert_eq!(plans.limit_for(&Company::new("none")).unwrap().calls, 0);
    }

    #[test]
    fn adding_a_machine_raises_the_limit() {
        let plans = Plans::standard();
        let mut c = Company::new("c").with_units(11, 0);
        assert_eq!(plans.limit_for(&c).unwrap().calls, 1_100_000);
        c.machines += 1;
        assert_eq!(plans.limit_for(&c).unwrap().calls, 1_200_000);
    }

    #[test]
    fn bad_configuration_is_a_clear_error() {
        assert_eq!(Plans::new(vec![]), Err(PlanError::NoPlans));
        let dup = vec![
            Plans::standard().plans[0].clone(),
            Plans::standard().plans[0].clone(),
        ];
        assert_eq!(
            Plans::new(dup),
            Err(PlanError::DuplicateName("free".into()))
        );
        let zero = Plan {
            name: "z".into(),
            kind: PlanKind::Flat { calls: 0 },
            default: false,
        };
        assert_eq!(
            Plans::new(vec![zero]),
            Err(PlanError::ZeroCalls("z".into()))
        );
        let plans = Plans::standard();
        let e = plans
            .limit_for(&Company::new("c").with_subscription("gold"))
            .unwrap_err();
        assert!(e.to_string().contains("unknown plan \"gold\""), "{e}");
        let e = plans
            .limit_for(&Company::new("c").with_subscription("free"))
            .unwrap_err();
        assert!(matches!(e, PlanError::SubscribedToDefault { .. }));
        let huge = Company::new("h").with_units(u64::MAX, 1);
        assert!(matches!(
            plans.limit_for(&huge),
            Err(PlanError::Overflow { .. })
        ));
        let huge = Company::new("h").with_units(u64::MAX / 2, 0);
        assert!(matches!(
            plans.limit_for(&huge),
            Err(PlanError::Overflow { .. })
        ));
        let paid_only = Plans::new(vec![plans.plans[1].clone()]).unwrap();
        assert_eq!(
            paid_only.limit_for(&Company::new("x")),
            Err(PlanError::NoApplicablePlan("x".into()))
        );
    }

    #[test]
    fn suggests_the_smallest_plan_that_covers_the_usage() {
        let plans = Plans::new(vec![
            Plans::standard().plans[0].clone(),
            Plan {
                name: "API Access".into(),
                kind: PlanKind::Flat { calls: 1_000_000 },
                default: false,
            },
            Plan {
                name: "Enterprise".into(),
                kind: PlanKind::Flat { calls: 10_000_000 },
                default: false,
            },
        ])
        .unwrap();
        let c = Company::new("c").with_units(3, 0);
        // The free plan (a default plan) applies already: never suggested, even where
        // it would cover the usage (an override holds this company lower).
        assert_eq!(plans.suggest_plan(&c, 250_000).unwrap().name, "API Access");
        assert_eq!(plans.suggest_plan(&c, 300_001).unwrap().name, "API Access");
        assert_eq!(
            plans.suggest_plan(&c, 1_000_001).unwrap().name,
            "Enterprise"
        );
        assert!(plans.suggest_plan(&c, 10_000_001).is_none());
        // A plan the company subscribes to is never suggested either.
        let paid = c.clone().with_subscription("API Access").with_override(500);
        assert_eq!(plans.suggest_plan(&paid, 501).unwrap().name, "Enterprise");
        let all = paid.with_subscription("Enterprise");
        assert!(plans.suggest_plan(&all, 501).is_none());
    }

    #[test]
    fn plans_and_companies_from_toml() {
        let plans: Plans = toml::from_str(
            "[[plans]]\nname = \"free\"\ncalls_per_unit = 100000\ndefault = true\n\
             [[plans]]\nname = \"API Access\"\ncalls = 1000000\n",
        )
        .unwrap();
        assert_eq!(plans, Plans::standard());
        let c: Company = toml::from_str(
            "id = \"acme\"\nmachines = 5\napps = 10\nsubscriptions = [\"API Access\"]\n",
        )
        .unwrap();
        assert_eq!(plans.limit_for(&c).unwrap().calls, 1_500_000);
        for bad in [
            "[[plans]]\nname = \"x\"\n",
            "[[plans]]\nname = \"x\"\ncalls = 1\ncalls_per_unit = 2\n",
            "[[plans]]\nname = \"x\"\ncalls = 0\n",
            "[[plans]]\nname = \"x\"\ncalls = 1\ncolour = \"red\"\n",
            "plans = []\n",
        ] {
            let e = toml::from_str::<Plans>(bad).unwrap_err().to_string();
            assert!(!e.is_empty(), "{bad}");
        }
        let e = toml::from_str::<Plans>("[[plans]]\nname = \"x\"\ncalls = 0\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("zero calls"), "{e}");
        let json = serde_json::to_string(&plans.limit_for(&c).unwrap()).unwrap();
        assert_eq!(json, r#"{"calls":1500000,"source":{"plan":"free"}}"#);
    }
}
