//! Subscription plans: what each one may do and how much.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Plan {
    Free,
    Starter,
    Pro,
    Agency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubscriptionStatus {
    Active,
    Trialing,
    PastDue,
    Canceled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Features {
    /// Every issue and recommendation (free shows the first 3 and 2).
    pub full_analysis: bool,
    pub location_analysis: bool,
    pub analysis_history: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = PlanLimits)]
pub struct Limits {
    pub requests_per_minute: u32,
    pub analyses_per_hour: u32,
    pub history_retention_days: u32,
}

impl Plan {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "free" => Some(Self::Free),
            "starter" => Some(Self::Starter),
            "pro" => Some(Self::Pro),
            "agency" => Some(Self::Agency),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Agency => "agency",
        }
    }

    pub fn features(self) -> Features {
        let paid = self != Self::Free;
        Features {
            full_analysis: paid,
            // Every plan sees location-wide findings; free sees the first few (like issues).
            location_analysis: true,
            analysis_history: true,
        }
    }

    pub fn limits(self) -> Limits {
        let (requests_per_minute, analyses_per_hour, history_retention_days) = match self {
            Self::Free => (20, 10, 7),
            Self::Starter => (60, 50, 30),
            Self::Pro => (100, 100, 90),
            Self::Agency => (500, 1000, 365),
        };
        Limits {
            requests_per_minute,
            analyses_per_hour,
            history_retention_days,
        }
    }
}

impl SubscriptionStatus {
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "active" => Some(Self::Active),
            "trialing" => Some(Self::Trialing),
            "past_due" | "pastdue" => Some(Self::PastDue),
            "canceled" | "cancelled" => Some(Self::Canceled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Trialing => "trialing",
            Self::PastDue => "past_due",
            Self::Canceled => "canceled",
        }
    }
}

/// The plan whose features apply: a canceled subscription falls back to free.
pub fn effective_plan(plan: Plan, status: SubscriptionStatus) -> Plan {
    if status == SubscriptionStatus::Canceled {
        Plan::Free
    } else {
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_plan_table() {
        assert_eq!(Plan::Free.limits().requests_per_minute, 20);
        assert_eq!(Plan::Starter.limits().analyses_per_hour, 50);
        assert_eq!(Plan::Pro.limits().history_retention_days, 90);
        assert_eq!(Plan::Agency.limits().requests_per_minute, 500);
    }

    #[test]
    fn canceled_subscriptions_get_free_features() {
        assert_eq!(
            effective_plan(Plan::Pro, SubscriptionStatus::Canceled),
            Plan::Free
        );
        assert_eq!(
            effective_plan(Plan::Pro, SubscriptionStatus::PastDue),
            Plan::Pro
        );
        assert!(!Plan::Free.features().full_analysis);
        assert!(Plan::Starter.features().full_analysis);
    }
}
