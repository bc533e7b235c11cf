//! The route table: every route is declared once, with its method, path and access
//! class, and the same declaration builds both the axum `Router` and the table
//! ([`crate::routes`]), so a route cannot be served without being listed.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{MethodFilter, on};

use crate::Api;

/// An HTTP method a route answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
            Method::Put => MethodFilter::PUT,
        }
    }
}

/// What a route gives access to: the class access control decides on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, without credentials: liveness (`/health`).
    Public,
    /// Counts, statistics and descriptions without patient data (`/metrics`,
    /// `/api/stats`, `/api/data-quality`, the FHIR CapabilityStatement).
    Metadata,
    /// Reads patient data: message content and headers, quarantine entries,
    /// patients, FHIR resources.
    Phi,
    /// Changes what Corridor holds or does: reprocess, resend, edits, discards,
    /// patient index decisions.
    Change,
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
        // Two methods on one path: axum merges the method routers of a path.
        self.router = self.router.route(path, on(method.filter(), handler));
        self.table.push(RouteInfo {
            method,
            path,
            access,
        });
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
