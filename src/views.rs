//! The HTML views whose data SQL assembles (`sql/050_views.sql`): the binding turns that jsonb into the core's
//! input and returns the core's document. (`trace_view` reads its rows itself: `traces::read`.)

use pgrx::prelude::*;

use crate::bind::{required, AnalyticsError, OrRaise, Raise};
use crate::jsonb::JsonbText;
use analytics_core::views::{dashboard, experiment};

/// `analytics._render_experiment_view(data jsonb) returns text`: the experiment view from the document of
/// `analytics._experiment_view_data`.
#[pg_extern(name = "_render_experiment_view", immutable, parallel_safe)]
pub fn render_experiment_view(data: Option<JsonbText>) -> String {
    let data: experiment::ViewData = serde_json::from_value(required(data, "data").parse("data"))
        .unwrap_or_else(|e| AnalyticsError::invalid(format!("data: not an experiment view document: {e}")).raise());
    experiment::render(&data).or_raise()
}

/// `analytics._render_dashboard_view(data jsonb) returns text`: the dashboard from the document of
/// `analytics._dashboard_view_data`.
#[pg_extern(name = "_render_dashboard_view", immutable, parallel_safe)]
pub fn render_dashboard_view(data: Option<JsonbText>) -> String {
    let data = required(data, "data").parse("data");
    if !data.is_object() {
        AnalyticsError::invalid("data: not a dashboard view document (a jsonb object)").raise();
    }
    dashboard::render(&data)
}
