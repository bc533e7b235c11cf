//! The route table: every route is declared once, with its method, path and access
//! class, and the same declaration builds both the axum `Router` and the table
//! ([`crate::routes`]), so a route cannot be served without being listed.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};

use access::Permission;

use crate::Api;

/// An HTTP method a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
            Method::Delete => MethodFilter::DELETE,
        }
    }
}

/// What a route gives access to: the class access control decides on. Each class but
/// `Public` needs exactly one [`Permission`] ([`Access::permission`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, without credentials: liveness (`/health`).
    Public,
    /// The Prometheus text (`/metrics`): read metadata, or anyone when `[http]
    /// metrics_public = true`.
    Metrics,
    /// Counts, statistics and descriptions without patient data (`/api/stats`,
    /// `/api/data-quality`, the FHIR CapabilityStatement).
    Metadata,
    /// Reads patient data: message content and headers, quarantine entries,
    /// patients, FHIR resources. Audited.
    Phi,
    /// Changes to messages: reprocess, resend, quarantine edits and discards. Audited.
    Operate,
    /// Patient index decisions: reviews, link, unlink, merge, unmerge. Audited.
    Steward,
    /// Users, tokens, configuration reload, audit export. Audited.
    Admin,
}

impl Access {
    /// The permission a request needs; None for a public route.
    pub fn permission(self) -> Option<Permission> {
        match self {
            Access::Public => None,
            Access::Metrics | Access::Metadata => Some(Permission::ReadMetadata),
            Access::Phi => Some(Permission::ReadPhi),
            Access::Operate => Some(Permission::Operate),
            Access::Steward => Some(Permission::Steward),
            Access::Admin => Some(Permission::Admin),
        }
    }

    /// Whether each request is recorded in the audit trail: PHI reads and changes.
    pub fn audited(self) -> bool {
        matches!(
            self,
            Access::Phi | Access::Operate | Access::Steward | Access::Admin
        )
    }
}

/// One route of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteInfo {
    pub method: Method,
    /// The path as axum matches it (`/api/messages/{id}`).
    pub path: &'static str,
    pub access: Access,
}

/// Routes being declared: the router and its table, built together.
pub(crate) struct Routes {
    router: Router<Api>,
    table: Vec<RouteInfo>,
}

impl Routes {
    pub(crate) fn new() -> Routes {
        Routes {
            router: Router::new(),
            table: Vec::new(),
        }
    }

    /// Declares `method path`, answered by `handler`, in access class `access`.
    pub(crate) fn add<H, T>(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        handler: H,
    ) -> Routes
    where
        H: Handler<T, Api>,
        T: 'static,
    {
        let route = RouteInfo {
            method,
            path,
            access,
        };
        // Every route is checked before its handler, by its own class: none can be
        // declared without it. Two methods on one path: axum merges the method routers
        // of a path.
        self.router = self.router.route(
            path,
            on(method.filter(), handler).route_layer(axum::middleware::from_fn(
                move |request: axum::extract::Request, next: axum::middleware::Next| {
                    crate::auth::guard(route, request, next)
                },
            )),
        );
        self.table.push(route);
        self
    }

    /// Applies `f` to the router of the routes declared so far (a layer for them alone).
    pub(crate) fn map_router(mut self, f: impl FnOnce(Router<Api>) -> Router<Api>) -> Routes {
        self.router = f(self.router);
        self
    }

    pub(crate) fn merge(mut self, other: Routes) -> Routes {
        self.router = self.router.merge(other.router);
        self.table.extend(other.table);
        self
    }

    pub(crate) fn into_parts(self) -> (Router<Api>, Vec<RouteInfo>) {
        (self.router, self.table)
    }
}
