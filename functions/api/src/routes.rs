//! The route table: every operation of the API with who may call it. Authorization, the
//! OpenAPI document and the authorization test matrix are all derived from it, so a route
//! cannot be added without a role list, a document entry and its 401/403/404 tests.

use std::collections::BTreeMap;

use vigie_auth::Role;

/// What an operation does (the handler is chosen by this).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    Me,
    ListTenants,
    CreateTenant,
    GetTenant,
    ListClients,
    CreateClient,
    GetClient,
    CreateSite,
    GetSite,
    ListDevices,
    GetDevice,
    RevokeDevice,
    CreateEnrollmentToken,
    ListEnrollmentTokens,
    RevokeEnrollmentToken,
    ListChannels,
    PutChannel,
    GetChannel,
    GetAlert,
    ListAlerts,
    AcknowledgeAlert,
    AssignAlert,
    TakeAlert,
    CommentAlert,
    ResolveAlert,
    ListPolicies,
    GetPolicy,
    PutPolicy,
    DeletePolicy,
    EffectivePolicy,
    TenantUsage,
    PlatformUsage,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
    CreatePlatformApiKey,
    ListUsers,
    GetUser,
    SetMembership,
    RemoveUser,
    CreateInvitation,
    ListInvitations,
    RevokeInvitation,
    AcceptInvitation,
    SuspendTenant,
    ResumeTenant,
    MoveDevice,
    SetDeviceTags,
    TestChannel,
    ListSites,
    DeleteChannel,
    AlertHistory,
    SetDeviceParent,
    ClearDeviceParent,
    ListWindows,
    PutWindow,
    GetWindow,
    DeleteWindow,
    WindowOccurrences,
    ListCalendars,
    PutCalendar,
    GetCalendar,
    DeleteCalendar,
    ImportHolidays,
    CalendarOpen,
    ListSchedules,
    PutSchedule,
    GetSchedule,
    DeleteSchedule,
    WhoIsOnCall,
    ScheduleShifts,
    AddOverride,
    DeleteOverride,
    ListTemplates,
    GetTemplate,
    ApplyTemplate,
    RemoveTemplate,
    CreateIncident,
    ListIncidents,
    GetIncident,
    AddIncidentAlerts,
    RemoveIncidentAlert,
    SetIncidentRoles,
    SetIncidentSeverity,
    SetIncidentStatus,
    AcknowledgeIncident,
    CommentIncident,
    PostIncidentStatusMessage,
    ResolveIncident,
    ListIncidentMessageTemplates,
    ResponseTimesReport,
    ListEscalationPolicies,
    PutEscalationPolicy,
    GetEscalationPolicy,
    DeleteEscalationPolicy,
    ListEscalationTemplates,
    PolicyFromTemplate,
    ListUserGroups,
    PutUserGroup,
    GetUserGroup,
    DeleteUserGroup,
}

/// Where the objects of an operation live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Realm {
    /// Platform-wide (the SaaS operator's tenants).
    Platform,
    /// Inside the caller's tenant.
    Tenant,
    /// Any authenticated caller, about itself.
    Caller,
    /// A verified identity that is nobody's member yet (accepting an invitation).
    Identity,
}

/// One operation of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub method: &'static str,
    /// `/v1/clients/{client_id}`: `{name}` segments are path parameters.
    pub path: &'static str,
    pub operation: Operation,
    pub realm: Realm,
    /// Roles allowed to call it; everyone else gets 403.
    pub roles: &'static [Role],
    pub summary: &'static str,
    /// Status of a success.
    pub success: u16,
    /// The OpenAPI schema name of the request body, if any.
    pub request: Option<&'static str>,
    /// The OpenAPI schema name of the success body.
    pub response: &'static str,
}

use Role::{Accounting, ClientViewer, MspAdmin, PlatformOperator, Technician};

const ANY: &[Role] = &[
    PlatformOperator,
    MspAdmin,
    Technician,
    ClientViewer,
    Accounting,
];
const PLATFORM: &[Role] = &[PlatformOperator];
const ADMIN: &[Role] = &[MspAdmin];
const READERS: &[Role] = &[MspAdmin, Technician, ClientViewer];
const RESPONDERS: &[Role] = &[MspAdmin, Technician];
const BILLING: &[Role] = &[MspAdmin, Accounting];
const PLATFORM_BILLING: &[Role] = &[PlatformOperator, Accounting];

/// One row of the table, positionally (the table reads as a table).
#[allow(clippy::too_many_arguments)]
const fn route(
    method: &'static str,
    path: &'static str,
    operation: Operation,
    realm: Realm,
    roles: &'static [Role],
    summary: &'static str,
    success: u16,
    request: Option<&'static str>,
    response: &'static str,
) -> Route {
    Route {
        method,
        path,
        operation,
        realm,
        roles,
        summary,
        success,
        request,
        response,
    }
}

/// Every route of `/v1`.
#[rustfmt::skip]
pub const ROUTES: &[Route] = &[
    route("GET", "/v1/me", Operation::Me, Realm::Caller, ANY, "Who the caller is", 200, None, "Me"),
    route("GET", "/v1/tenants", Operation::ListTenants, Realm::Platform, PLATFORM, "List tenants", 200, None, "TenantPage"),
    route("POST", "/v1/tenants", Operation::CreateTenant, Realm::Platform, PLATFORM, "Sign a tenant up", 201, Some("NewTenant"), "Tenant"),
    route("GET", "/v1/tenants/{tenant_id}", Operation::GetTenant, Realm::Platform, PLATFORM, "A tenant", 200, None, "Tenant"),
    route("GET", "/v1/clients", Operation::ListClients, Realm::Tenant, READERS, "List client companies", 200, None, "ClientPage"),
    route("POST", "/v1/clients", Operation::CreateClient, Realm::Tenant, ADMIN, "Create a client company", 201, Some("NewClient"), "Client"),
    route("GET", "/v1/clients/{client_id}", Operation::GetClient, Realm::Tenant, READERS, "A client company", 200, None, "Client"),
    route("POST", "/v1/clients/{client_id}/sites", Operation::CreateSite, Realm::Tenant, ADMIN, "Create a site", 201, Some("NewSite"), "Site"),
    route("GET", "/v1/clients/{client_id}/sites/{site_id}", Operation::GetSite, Realm::Tenant, READERS, "A site", 200, None, "Site"),
    route("GET", "/v1/devices", Operation::ListDevices, Realm::Tenant, READERS, "List devices (filters: client_id, site_id, connection, outdated)", 200, None, "DevicePage"),
    route("GET", "/v1/devices/{device_id}", Operation::GetDevice, Realm::Tenant, READERS, "A device", 200, None, "Device"),
    route("POST", "/v1/devices/{device_id}/revoke", Operation::RevokeDevice, Realm::Tenant, ADMIN, "Revoke a device", 200, None, "Device"),
    route("GET", "/v1/devices/{device_id}/effective-policy", Operation::EffectivePolicy, Realm::Tenant, RESPONDERS, "The rules in force for a device, each with the scope it comes from", 200, None, "EffectivePolicy"),
    route("POST", "/v1/enrollment-tokens", Operation::CreateEnrollmentToken, Realm::Tenant, ADMIN, "Create an enrolment token (its secret is shown once)", 201, Some("NewEnrollmentToken"), "CreatedEnrollmentToken"),
    route("GET", "/v1/enrollment-tokens", Operation::ListEnrollmentTokens, Realm::Tenant, ADMIN, "List enrolment tokens", 200, None, "EnrollmentTokenPage"),
    route("POST", "/v1/enrollment-tokens/{token_id}/revoke", Operation::RevokeEnrollmentToken, Realm::Tenant, ADMIN, "Revoke an enrolment token", 200, None, "EnrollmentToken"),
    route("GET", "/v1/channels", Operation::ListChannels, Realm::Tenant, ADMIN, "List notification channels", 200, None, "ChannelPage"),
    route("PUT", "/v1/channels/{channel_id}", Operation::PutChannel, Realm::Tenant, ADMIN, "Create or replace a notification channel", 200, Some("ChannelInput"), "Channel"),
    route("GET", "/v1/channels/{channel_id}", Operation::GetChannel, Realm::Tenant, ADMIN, "A notification channel", 200, None, "Channel"),
    route("GET", "/v1/alerts", Operation::ListAlerts, Realm::Tenant, READERS, "List alerts (filters: status, severity, client_id, site_id, family, since_ms, until_ms)", 200, None, "AlertPage"),
    route("GET", "/v1/alerts/{alert_id}", Operation::GetAlert, Realm::Tenant, READERS, "An alert", 200, None, "Alert"),
    route("POST", "/v1/alerts/{alert_id}/acknowledge", Operation::AcknowledgeAlert, Realm::Tenant, RESPONDERS, "Acknowledge an alert", 200, None, "Alert"),
    route("POST", "/v1/alerts/{alert_id}/assign", Operation::AssignAlert, Realm::Tenant, RESPONDERS, "Assign an alert to someone (or nobody)", 200, Some("Assignment"), "Alert"),
    route("POST", "/v1/alerts/{alert_id}/take", Operation::TakeAlert, Realm::Tenant, RESPONDERS, "Take an alert (assign it to yourself)", 200, None, "Alert"),
    route("POST", "/v1/alerts/{alert_id}/comments", Operation::CommentAlert, Realm::Tenant, RESPONDERS, "Comment on an alert", 201, Some("NewComment"), "Alert"),
    route("POST", "/v1/alerts/{alert_id}/resolve", Operation::ResolveAlert, Realm::Tenant, RESPONDERS, "Resolve an alert by hand", 200, None, "Alert"),
    route("GET", "/v1/policies", Operation::ListPolicies, Realm::Tenant, ADMIN, "List policies", 200, None, "PolicyPage"),
    route("GET", "/v1/policies/{scope}", Operation::GetPolicy, Realm::Tenant, ADMIN, "The policy at a scope: tenant, tag:k=v, client:c, site:c/s or device:d, URL-encoded", 200, None, "Policy"),
    route("PUT", "/v1/policies/{scope}", Operation::PutPolicy, Realm::Tenant, ADMIN, "Create or replace the policy at a scope", 200, Some("PolicyInput"), "Policy"),
    route("DELETE", "/v1/policies/{scope}", Operation::DeletePolicy, Realm::Tenant, ADMIN, "Remove the policy at a scope", 200, None, "Policy"),
    route("GET", "/v1/usage", Operation::TenantUsage, Realm::Tenant, BILLING, "Usage of the tenant for a month (month=YYYY-MM; granularity=month|day; format=json|csv; client_id)", 200, None, "Usage"),
    route("GET", "/v1/platform/usage", Operation::PlatformUsage, Realm::Platform, PLATFORM_BILLING, "Usage of every tenant for a month (month=YYYY-MM; format=json|csv)", 200, None, "Usage"),
    route("POST", "/v1/api-keys", Operation::CreateApiKey, Realm::Tenant, ADMIN, "Create an API key for accounting or an integration (its secret is shown once)", 201, Some("NewApiKey"), "CreatedApiKey"),
    route("GET", "/v1/api-keys", Operation::ListApiKeys, Realm::Tenant, ADMIN, "List the tenant's API keys", 200, None, "ApiKeyPage"),
    route("POST", "/v1/api-keys/{key_id}/revoke", Operation::RevokeApiKey, Realm::Tenant, ADMIN, "Revoke an API key", 200, None, "ApiKey"),
    route("POST", "/v1/platform/api-keys", Operation::CreatePlatformApiKey, Realm::Platform, PLATFORM, "Create a platform-wide accounting API key (its secret is shown once)", 201, Some("NewPlatformApiKey"), "CreatedApiKey"),
    route("GET", "/v1/users", Operation::ListUsers, Realm::Tenant, ADMIN, "List the tenant's users", 200, None, "UserPage"),
    route("GET", "/v1/users/{user_id}", Operation::GetUser, Realm::Tenant, ADMIN, "A user", 200, None, "User"),
    route("PUT", "/v1/users/{user_id}/membership", Operation::SetMembership, Realm::Tenant, ADMIN, "Change a user's role (and client companies)", 200, Some("Membership"), "User"),
    route("POST", "/v1/users/{user_id}/remove", Operation::RemoveUser, Realm::Tenant, ADMIN, "Remove a user's access", 200, None, "User"),
    route("POST", "/v1/invitations", Operation::CreateInvitation, Realm::Tenant, ADMIN, "Invite someone (the code is shown once)", 201, Some("NewInvitation"), "CreatedInvitation"),
    route("GET", "/v1/invitations", Operation::ListInvitations, Realm::Tenant, ADMIN, "List invitations", 200, None, "InvitationPage"),
    route("POST", "/v1/invitations/{invitation_id}/revoke", Operation::RevokeInvitation, Realm::Tenant, ADMIN, "Revoke an invitation", 200, None, "Invitation"),
    route("POST", "/v1/invitations/accept", Operation::AcceptInvitation, Realm::Identity, ANY, "Accept an invitation with its code (a verified identity that is nobody's member yet)", 201, Some("InvitationAcceptance"), "User"),
    route("POST", "/v1/tenants/{tenant_id}/suspend", Operation::SuspendTenant, Realm::Platform, PLATFORM, "Suspend a tenant (its people and keys are refused)", 200, None, "Tenant"),
    route("POST", "/v1/tenants/{tenant_id}/resume", Operation::ResumeTenant, Realm::Platform, PLATFORM, "Resume a suspended tenant", 200, None, "Tenant"),
    route("POST", "/v1/devices/{device_id}/move", Operation::MoveDevice, Realm::Tenant, ADMIN, "Move a device to another client company and site", 200, Some("DeviceMove"), "Device"),
    route("PUT", "/v1/devices/{device_id}/tags", Operation::SetDeviceTags, Realm::Tenant, ADMIN, "Replace a device's tags (role=server, …)", 200, Some("DeviceTags"), "Device"),
    route("POST", "/v1/channels/{channel_id}/test", Operation::TestChannel, Realm::Tenant, ADMIN, "Send a test notification through a channel now", 200, None, "TestResult"),
    route("GET", "/v1/clients/{client_id}/sites", Operation::ListSites, Realm::Tenant, READERS, "List the sites of a client company", 200, None, "SitePage"),
    route("DELETE", "/v1/channels/{channel_id}", Operation::DeleteChannel, Realm::Tenant, ADMIN, "Remove a notification channel", 200, None, "Channel"),
    route("PUT", "/v1/devices/{device_id}/parent", Operation::SetDeviceParent, Realm::Tenant, ADMIN, "Set the device this one depends on (its site's router, its hypervisor): while the parent is down, this device's alerts are attached to the parent's instead of notifying", 200, Some("DeviceParent"), "DeviceDependencies"),
    route("DELETE", "/v1/devices/{device_id}/parent", Operation::ClearDeviceParent, Realm::Tenant, ADMIN, "Remove a device's parent", 200, None, "DeviceDependencies"),
    route("GET", "/v1/maintenance-windows", Operation::ListWindows, Realm::Tenant, READERS, "List maintenance windows", 200, None, "WindowPage"),
    route("PUT", "/v1/maintenance-windows/{window_id}", Operation::PutWindow, Realm::Tenant, RESPONDERS, "Create or replace a maintenance window", 200, Some("WindowInput"), "Window"),
    route("GET", "/v1/maintenance-windows/{window_id}", Operation::GetWindow, Realm::Tenant, READERS, "A maintenance window", 200, None, "Window"),
    route("DELETE", "/v1/maintenance-windows/{window_id}", Operation::DeleteWindow, Realm::Tenant, RESPONDERS, "Remove a maintenance window", 200, None, "Window"),
    route("GET", "/v1/maintenance-windows/{window_id}/occurrences", Operation::WindowOccurrences, Realm::Tenant, READERS, "When a window runs, in UTC and in its local time, over Unix ms from and to (from=…; to=…; limit=…)", 200, None, "WindowOccurrences"),
    route("GET", "/v1/business-calendars", Operation::ListCalendars, Realm::Tenant, READERS, "List business-hours calendars", 200, None, "CalendarPage"),
    route("PUT", "/v1/business-calendars/{calendar_id}", Operation::PutCalendar, Realm::Tenant, ADMIN, "Create or replace a business-hours calendar (tenant, client company or site; weekly hours, holidays, exceptions)", 200, Some("CalendarInput"), "Calendar"),
    route("GET", "/v1/business-calendars/{calendar_id}", Operation::GetCalendar, Realm::Tenant, READERS, "A business-hours calendar", 200, None, "Calendar"),
    route("DELETE", "/v1/business-calendars/{calendar_id}", Operation::DeleteCalendar, Realm::Tenant, ADMIN, "Remove a business-hours calendar", 200, None, "Calendar"),
    route("POST", "/v1/business-calendars/{calendar_id}/holidays", Operation::ImportHolidays, Realm::Tenant, ADMIN, "Add public holidays from iCalendar text or a list, merged by date (importing twice adds nothing)", 200, Some("HolidayImport"), "HolidaysImported"),
    route("GET", "/v1/business-calendars/{calendar_id}/open", Operation::CalendarOpen, Realm::Tenant, READERS, "Whether a calendar is open at an instant (at=Unix ms or RFC 3339; default now), and when it next opens and closes", 200, None, "CalendarOpen"),
    route("GET", "/v1/oncall-schedules", Operation::ListSchedules, Realm::Tenant, RESPONDERS, "List on-call schedules", 200, None, "SchedulePage"),
    route("PUT", "/v1/oncall-schedules/{schedule_id}", Operation::PutSchedule, Realm::Tenant, ADMIN, "Create or replace an on-call schedule (its overrides are kept when the body has none)", 200, Some("ScheduleInput"), "Schedule"),
    route("GET", "/v1/oncall-schedules/{schedule_id}", Operation::GetSchedule, Realm::Tenant, RESPONDERS, "An on-call schedule", 200, None, "Schedule"),
    route("DELETE", "/v1/oncall-schedules/{schedule_id}", Operation::DeleteSchedule, Realm::Tenant, ADMIN, "Remove an on-call schedule", 200, None, "Schedule"),
    route("GET", "/v1/oncall-schedules/{schedule_id}/on-call", Operation::WhoIsOnCall, Realm::Tenant, RESPONDERS, "Who is on call at any instant, past or future (at=Unix ms or RFC 3339; default now), since and until when", 200, None, "OnCall"),
    route("GET", "/v1/oncall-schedules/{schedule_id}/shifts", Operation::ScheduleShifts, Realm::Tenant, RESPONDERS, "Who is on call over a period (from=, to=: Unix ms or RFC 3339; at most 90 days)", 200, None, "Shifts"),
    route("POST", "/v1/oncall-schedules/{schedule_id}/overrides", Operation::AddOverride, Realm::Tenant, RESPONDERS, "Put someone on call instead of the rotations for a period (a swapped shift)", 201, Some("NewOverride"), "OverrideAdded"),
    route("DELETE", "/v1/oncall-schedules/{schedule_id}/overrides/{override_id}", Operation::DeleteOverride, Realm::Tenant, RESPONDERS, "Remove an override", 200, None, "Schedule"),
    route("GET", "/v1/policy-templates", Operation::ListTemplates, Realm::Tenant, RESPONDERS, "List the built-in policy templates with their rules' defaults", 200, None, "TemplatePage"),
    route("GET", "/v1/policy-templates/{template_id}", Operation::GetTemplate, Realm::Tenant, RESPONDERS, "A built-in policy template with its rules' defaults", 200, None, "Template"),
    route("POST", "/v1/policies/{scope}/templates/{template_id}", Operation::ApplyTemplate, Realm::Tenant, RESPONDERS, "Apply a template at a scope (again: replaces only its own rules), with optional per-rule overrides", 200, Some("TemplateApplication"), "AppliedTemplate"),
    route("DELETE", "/v1/policies/{scope}/templates/{template_id}", Operation::RemoveTemplate, Realm::Tenant, RESPONDERS, "Remove a template's rules from the policy at a scope", 200, None, "RemovedTemplate"),
    route("GET", "/v1/alert-history", Operation::AlertHistory, Realm::Tenant, READERS, "Alert episodes opened in a time window, newest last (filters: since_ms, until_ms, status, severity, client_id, site_id, family)", 200, None, "AlertPage"),
    route("POST", "/v1/incidents", Operation::CreateIncident, Realm::Tenant, RESPONDERS, "Open an incident: a title, a severity (1 to 3), the alerts it groups and who holds its roles", 201, Some("NewIncident"), "Incident"),
    route("GET", "/v1/incidents", Operation::ListIncidents, Realm::Tenant, READERS, "List incidents, oldest first (filters: status, sev, client_id, alert_id, since_ms, until_ms on the opening time)", 200, None, "IncidentSummaryPage"),
    route("GET", "/v1/incidents/{incident_id}", Operation::GetIncident, Realm::Tenant, READERS, "An incident with its alerts, roles, timeline and status messages; a client viewer sees its external status messages only", 200, None, "Incident"),
    route("POST", "/v1/incidents/{incident_id}/alerts", Operation::AddIncidentAlerts, Realm::Tenant, RESPONDERS, "Group more alerts into an incident", 200, Some("IncidentAlerts"), "Incident"),
    route("DELETE", "/v1/incidents/{incident_id}/alerts/{alert_id}", Operation::RemoveIncidentAlert, Realm::Tenant, RESPONDERS, "Take an alert out of an incident", 200, None, "Incident"),
    route("PUT", "/v1/incidents/{incident_id}/roles", Operation::SetIncidentRoles, Realm::Tenant, RESPONDERS, "Name or clear the incident manager, technical lead and communications lead: a role left out is unchanged, null clears it", 200, Some("IncidentRoles"), "Incident"),
    route("POST", "/v1/incidents/{incident_id}/severity", Operation::SetIncidentSeverity, Realm::Tenant, RESPONDERS, "Change an incident's severity", 200, Some("IncidentSeverity"), "Incident"),
    route("POST", "/v1/incidents/{incident_id}/status", Operation::SetIncidentStatus, Realm::Tenant, RESPONDERS, "Move an incident to investigating, identified, monitoring or resolved", 200, Some("IncidentStatusChange"), "Incident"),
    route("POST", "/v1/incidents/{incident_id}/acknowledge", Operation::AcknowledgeIncident, Realm::Tenant, RESPONDERS, "Acknowledge an incident: the first acknowledgement counts for MTTA", 200, None, "Incident"),
    route("POST", "/v1/incidents/{incident_id}/comments", Operation::CommentIncident, Realm::Tenant, RESPONDERS, "Comment on an incident's timeline, also after its resolution", 201, Some("NewComment"), "Incident"),
    route("POST", "/v1/incidents/{incident_id}/status-messages", Operation::PostIncidentStatusMessage, Realm::Tenant, RESPONDERS, "Post an internal or external status message, from a template with its fields or as free text", 201, Some("NewStatusMessage"), "Incident"),
    route("POST", "/v1/incidents/{incident_id}/resolve", Operation::ResolveIncident, Realm::Tenant, RESPONDERS, "Resolve an incident: its duration counts for MTTR; only comments and status messages follow", 200, None, "Incident"),
    route("GET", "/v1/incident-message-templates", Operation::ListIncidentMessageTemplates, Realm::Tenant, RESPONDERS, "List the built-in status message templates with their internal and external wordings and fields", 200, None, "IncidentMessageTemplatePage"),
    route("GET", "/v1/reports/response-times", Operation::ResponseTimesReport, Realm::Tenant, &[MspAdmin, Technician, Accounting], "MTTA and MTTR per severity over the incidents opened in a time window (from=…; to=…; client_id)", 200, None, "ResponseTimes"),
    // Escalation policies, their built-in templates and user groups (crate::escalation).
    route("GET", "/v1/escalation-policies", Operation::ListEscalationPolicies, Realm::Tenant, RESPONDERS, "List escalation policies", 200, None, "EscalationPolicyPage"),
    route("PUT", "/v1/escalation-policies/{policy_id}", Operation::PutEscalationPolicy, Realm::Tenant, ADMIN, "Create or replace an escalation policy (every channel, user group and user it names must exist; running escalations keep their copy)", 200, Some("EscalationPolicyInput"), "EscalationPolicy"),
    route("GET", "/v1/escalation-policies/{policy_id}", Operation::GetEscalationPolicy, Realm::Tenant, RESPONDERS, "An escalation policy", 200, None, "EscalationPolicy"),
    route("DELETE", "/v1/escalation-policies/{policy_id}", Operation::DeleteEscalationPolicy, Realm::Tenant, ADMIN, "Remove an escalation policy (running escalations keep their copy)", 200, None, "EscalationPolicy"),
    route("GET", "/v1/escalation-templates", Operation::ListEscalationTemplates, Realm::Tenant, RESPONDERS, "List the built-in escalation templates (the seed procedures) with the parameters they need", 200, None, "EscalationTemplatePage"),
    route("POST", "/v1/escalation-policies/from-template/{template_id}", Operation::PolicyFromTemplate, Realm::Tenant, ADMIN, "Create an escalation policy from a built-in template (409 policy_exists if its id is taken)", 201, Some("EscalationTemplateParams"), "EscalationPolicy"),
    route("GET", "/v1/user-groups", Operation::ListUserGroups, Realm::Tenant, RESPONDERS, "List user groups", 200, None, "UserGroupPage"),
    route("PUT", "/v1/user-groups/{group_id}", Operation::PutUserGroup, Realm::Tenant, ADMIN, "Create or replace a user group (members are users of the tenant)", 200, Some("UserGroupInput"), "UserGroup"),
    route("GET", "/v1/user-groups/{group_id}", Operation::GetUserGroup, Realm::Tenant, RESPONDERS, "A user group", 200, None, "UserGroup"),
    route("DELETE", "/v1/user-groups/{group_id}", Operation::DeleteUserGroup, Realm::Tenant, ADMIN, "Remove a user group (409 group_in_use while an escalation policy names it)", 200, None, "UserGroup"),
];

/// A matched route and its path parameters.
#[derive(Debug, Clone)]
pub struct Matched {
    pub route: &'static Route,
    pub params: BTreeMap<&'static str, String>,
}

/// Why no route matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoMatch {
    /// No route has this path.
    Path,
    /// Some route has this path, with other methods (these, for the `allow` header).
    Method(Vec<&'static str>),
}

/// Finds the route of `method` and `path`.
pub fn find(method: &str, path: &str) -> Result<Matched, NoMatch> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let mut allowed = Vec::new();
    for route in ROUTES {
        let Some(params) = match_path(route.path, &segments) else {
            continue;
        };
        if route.method == method {
            return Ok(Matched { route, params });
        }
        allowed.push(route.method);
    }
    Err(if allowed.is_empty() {
        NoMatch::Path
    } else {
        NoMatch::Method(allowed)
    })
}

fn match_path(template: &'static str, segments: &[&str]) -> Option<BTreeMap<&'static str, String>> {
    let parts: Vec<&'static str> = template.split('/').collect();
    if parts.len() != segments.len() {
        return None;
    }
    let mut params = BTreeMap::new();
    for (part, segment) in parts.into_iter().zip(segments) {
        match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if !segment.is_empty() => {
                params.insert(name, (*segment).to_owned());
            }
            Some(_) => return None,
            None if part == *segment => {}
            None => return None,
        }
    }
    Some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_parameters() {
        let m = find("GET", "/v1/clients/acme/sites/hq").expect("route");
        assert_eq!(m.route.operation, Operation::GetSite);
        assert_eq!(m.params.get("client_id").map(String::as_str), Some("acme"));
        assert_eq!(m.params.get("site_id").map(String::as_str), Some("hq"));
        assert_eq!(
            find("DELETE", "/v1/clients").map(|_| ()),
            Err(NoMatch::Method(vec!["GET", "POST"]))
        );
        assert_eq!(find("GET", "/v1/nothing").map(|_| ()), Err(NoMatch::Path));
        assert_eq!(
            find("GET", "/v1/clients//sites/x").map(|_| ()),
            Err(NoMatch::Path)
        );
    }

    #[test]
    fn every_route_is_unique_and_names_its_roles() {
        let mut seen = std::collections::BTreeSet::new();
        for r in ROUTES {
            assert!(
                seen.insert((r.method, r.path)),
                "{} {} twice",
                r.method,
                r.path
            );
            assert!(!r.roles.is_empty(), "{} {} has no role", r.method, r.path);
            assert!(r.path.starts_with("/v1/"));
            if r.realm == Realm::Platform {
                assert!(
                    r.roles
                        .iter()
                        .all(|role| [PlatformOperator, Accounting].contains(role)),
                    "{}: platform routes are the operator's (and platform accounting's)",
                    r.path
                );
            }
            if r.realm == Realm::Tenant {
                assert!(
                    !r.roles.contains(&PlatformOperator),
                    "{}: the operator reads no tenant data",
                    r.path
                );
            }
            if r.method != "GET" && r.realm != Realm::Identity {
                assert!(
                    !r.roles.contains(&ClientViewer),
                    "{}: viewers only read",
                    r.path
                );
            }
        }
    }
}
