//! The OpenAPI 3.1 document served at `/openapi.json`: schemas derived from `patd-proto` with
//! utoipa, and one operation for every route the router serves, with every documented status.

use crate::routes::{RouteEntry, PAT_PREFIXES};
use axum::http::Method;
use patd_core::expiry::Family;
use patd_proto::{
    BulkUpdateRequest, CreatePersonalAccessTokenRequest, CreatePersonalAccessTokenResponse,
    ErrorMessageDto, ErrorResponseDto, GetPersonalAccessTokenResponse, JsonPatchOperation,
    OAuthErrorBody, OAuthInfo, PatOwner, RateLimitBody, TokenRequest, TokenResponse,
    UnauthorizedBody,
};
use std::sync::OnceLock;
use utoipa::openapi::content::Content;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{
    HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem,
};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr, Required,
    Schema,
};

/// The document as JSON text, built once.
pub fn document_json() -> String {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".to_owned()))
        .clone()
}

/// The document.
pub fn document() -> OpenApi {
    let mut paths = PathsBuilder::new();
    for entry in operations() {
        let mut item: Option<PathItem> = None;
        for (method, operation) in entry.1 {
            let added = PathItem::new(method, operation);
            item = Some(match item {
                Some(mut existing) => {
                    existing.merge_operations(added);
                    existing
                }
                None => added,
            });
        }
        if let Some(item) = item {
            paths = paths.path(entry.0, item);
        }
    }
    let components = ComponentsBuilder::new()
        .schema_from::<PatOwner>()
        .schema_from::<CreatePersonalAccessTokenRequest>()
        .schema_from::<CreatePersonalAccessTokenResponse>()
        .schema_from::<GetPersonalAccessTokenResponse>()
        .schema_from::<ErrorMessageDto>()
        .schema_from::<ErrorResponseDto>()
        .schema_from::<UnauthorizedBody>()
        .schema_from::<OAuthErrorBody>()
        .schema_from::<TokenRequest>()
        .schema_from::<TokenResponse>()
        .schema_from::<OAuthInfo>()
        .schema_from::<BulkUpdateRequest>()
        .schema_from::<JsonPatchOperation>()
        .schema_from::<RateLimitBody>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("patd")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Personal access tokens, wire-compatible with SailPoint Identity Security \
                     Cloud's Personal Access Tokens API.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

/// The (path, method) pairs the document describes, for comparison with the router's table.
pub fn documented_routes() -> Vec<RouteEntry> {
    operations()
        .into_iter()
        .map(|(path, operations)| RouteEntry {
            path,
            methods: operations
                .iter()
                .map(|(method, _)| to_method(method))
                .collect(),
        })
        .collect()
}

fn to_method(method: &HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Trace => Method::TRACE,
    }
}

type Operations = Vec<(String, Vec<(HttpMethod, utoipa::openapi::path::Operation)>)>;

fn schema_ref(name: &str) -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(name))
}

fn json(schema: RefOr<Schema>) -> Content {
    Content::new(Some(schema))
}

fn array_of(name: &str) -> RefOr<Schema> {
    ArrayBuilder::new().items(schema_ref(name)).into()
}

fn string_schema() -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).into()
}

/// Adds the error answers every bearer-authenticated route can give.
fn api_errors(mut operation: OperationBuilder, statuses: &[u16]) -> OperationBuilder {
    for status in statuses {
        let (description, schema) = match status {
            400 => (
                "Client error: the body, a parameter or a rule (see causes)",
                "ErrorResponseDto",
            ),
            401 => ("Missing or invalid bearer token", "UnauthorizedBody"),
            403 => (
                "The caller holds none of the rights the operation accepts",
                "ErrorResponseDto",
            ),
            404 => (
                "No such PAT, or one the caller may not see",
                "ErrorResponseDto",
            ),
            405 => (
                "The method is not supported on this path",
                "ErrorResponseDto",
            ),
            413 => (
                "The body is longer than the server accepts (--max-body-size)",
                "ErrorResponseDto",
            ),
            429 => ("Too many requests", "RateLimitBody"),
            503 => (
                "The request took longer than the server allows (--request-timeout)",
                "ErrorResponseDto",
            ),
            _ => ("Internal fault", "ErrorResponseDto"),
        };
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", json(schema_ref(schema)));
        if *status == 429 {
            response = response.header(
                "Retry-After",
                HeaderBuilder::new()
                    .schema(ObjectBuilder::new().schema_type(Type::Integer))
                    .build(),
            );
        }
        if *status == 401 {
            response = response.header(
                "WWW-Authenticate",
                HeaderBuilder::new().schema(string_schema()).build(),
            );
        }
        operation = operation.response(status.to_string(), response.build());
    }
    operation
}

fn bearer(operation: OperationBuilder) -> OperationBuilder {
    operation.security(SecurityRequirement::new("bearer", Vec::<String>::new()))
}

fn query_param(name: &str, description: &str) -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(string_schema()))
        .build()
}

fn id_param() -> utoipa::openapi::path::Parameter {
    ParameterBuilder::new()
        .name("id")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some("The PAT's id"))
        .schema(Some(string_schema()))
        .build()
}

fn operations() -> Operations {
    let mut all: Operations = Vec::new();
    for (prefix, family) in PAT_PREFIXES {
        let tag = prefix.trim_start_matches('/').replace('/', "-");
        let version = match family {
            Family::Classic => "classic",
            Family::NeverExpiresAware => "never-expires-aware",
        };
        let list = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("listPersonalAccessTokens {prefix}")))
            .summary(Some(format!(
                "List personal access tokens ({version} family)"
            )))
            .parameter(query_param(
                "owner-id",
                "'me', an identity id, or absent for the whole tenant",
            ))
            .parameter(query_param(
                "filters",
                "SailPoint filter grammar on lastUsed, created, expirationDate, name, managed",
            ))
            .parameter(query_param(
                "sorters",
                "name, created, lastUsed, expirationDate; '-' for descending",
            ))
            .parameter(query_param("limit", "0 to 250, default 250"))
            .parameter(query_param("offset", "default 0"))
            .parameter(query_param("count", "true: the total in X-Total-Count"))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The PATs")
                    .content(
                        "application/json",
                        json(array_of("GetPersonalAccessTokenResponse")),
                    )
                    .header(
                        "X-Total-Count",
                        HeaderBuilder::new()
                            .schema(ObjectBuilder::new().schema_type(Type::Integer))
                            .build(),
                    )
                    .build(),
            );
        let create = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("createPersonalAccessToken {prefix}")))
            .summary(Some(format!(
                "Create a personal access token ({version} family)"
            )))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        json(schema_ref("CreatePersonalAccessTokenRequest")),
                    )
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The new PAT, with its secret: shown this once")
                    .content(
                        "application/json",
                        json(schema_ref("CreatePersonalAccessTokenResponse")),
                    )
                    .build(),
            );
        let patch = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("patchPersonalAccessToken {prefix}")))
            .summary(Some(
                "Patch a personal access token with RFC 6902 operations".to_owned(),
            ))
            .parameter(id_param())
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json-patch+json",
                        json(array_of("JsonPatchOperation")),
                    )
                    .content("application/json", json(array_of("JsonPatchOperation")))
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The patched PAT")
                    .content(
                        "application/json",
                        json(schema_ref("GetPersonalAccessTokenResponse")),
                    )
                    .build(),
            );
        let delete = OperationBuilder::new()
            .tag(tag.clone())
            .operation_id(Some(format!("deletePersonalAccessToken {prefix}")))
            .summary(Some(
                "Delete a personal access token; its access tokens stop working at once".to_owned(),
            ))
            .parameter(id_param())
            .response("204", ResponseBuilder::new().description("Deleted").build());
        all.push((
            prefix.to_owned(),
            vec![
                (
                    HttpMethod::Get,
                    bearer(api_errors(list, &[400, 401, 403, 405, 429, 500, 503])).build(),
                ),
                (
                    HttpMethod::Post,
                    bearer(api_errors(
                        create,
                        &[400, 401, 403, 405, 413, 429, 500, 503],
                    ))
                    .build(),
                ),
            ],
        ));
        all.push((
            format!("{prefix}/{{id}}"),
            vec![
                (
                    HttpMethod::Patch,
                    bearer(api_errors(
                        patch,
                        &[400, 401, 403, 404, 405, 413, 429, 500, 503],
                    ))
                    .build(),
                ),
                (
                    HttpMethod::Delete,
                    bearer(api_errors(
                        delete,
                        &[400, 401, 403, 404, 405, 429, 500, 503],
                    ))
                    .build(),
                ),
            ],
        ));
    }
    let bulk = |method: &str| {
        let operation = OperationBuilder::new()
            .tag("personal-access-tokens-v1")
            .operation_id(Some(format!("bulkUpdatePersonalAccessTokens {method}")))
            .summary(Some(
                "Apply one patch to up to 25 PATs, all or nothing".to_owned(),
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", json(schema_ref("BulkUpdateRequest")))
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("The updated PATs")
                    .content(
                        "application/json",
                        json(array_of("GetPersonalAccessTokenResponse")),
                    )
                    .build(),
            );
        bearer(api_errors(
            operation,
            &[400, 401, 403, 405, 413, 429, 500, 503],
        ))
        .build()
    };
    all.push((
        crate::routes::BULK_UPDATE_PATH.to_owned(),
        vec![
            (HttpMethod::Patch, bulk("PATCH")),
            (HttpMethod::Post, bulk("POST")),
        ],
    ));
    let oauth_error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content("application/json", json(schema_ref("OAuthErrorBody")))
            .build()
    };
    let form_body = RequestBodyBuilder::new()
        .content(
            "application/x-www-form-urlencoded",
            json(schema_ref("TokenRequest")),
        )
        .content("multipart/form-data", json(schema_ref("TokenRequest")))
        .build();
    let token = OperationBuilder::new()
        .tag("oauth")
        .operation_id(Some("token"))
        .summary(Some(
            "Exchange a PAT for an access token (client credentials in a form or multipart body, \
             the query string, or HTTP Basic)"
                .to_owned(),
        ))
        .request_body(Some(form_body))
        .response(
            "200",
            ResponseBuilder::new()
                .description("An access token")
                .content("application/json", json(schema_ref("TokenResponse")))
                .header(
                    "Cache-Control",
                    HeaderBuilder::new().schema(string_schema()).build(),
                )
                .build(),
        )
        .response(
            "400",
            oauth_error("invalid_request or unsupported_grant_type"),
        )
        .response(
            "401",
            oauth_error("invalid_client: the same answer for every bad credential"),
        );
    let token = api_errors(token, &[405, 413, 429, 500, 503]).build();
    all.push(("/oauth/token".to_owned(), vec![(HttpMethod::Post, token)]));
    let info = OperationBuilder::new()
        .tag("oauth")
        .operation_id(Some("info"))
        .summary(Some("The tenant and its token endpoint".to_owned()))
        .response(
            "200",
            ResponseBuilder::new()
                .description("Tenant information")
                .content("application/json", json(schema_ref("OAuthInfo")))
                .build(),
        );
    all.push((
        "/oauth/info".to_owned(),
        vec![(HttpMethod::Get, api_errors(info, &[405, 500, 503]).build())],
    ));
    let object = || -> RefOr<Schema> { ObjectBuilder::new().schema_type(Type::Object).into() };
    let jwks = OperationBuilder::new()
        .tag("oauth")
        .operation_id(Some("jwks"))
        .summary(Some(
            "The public keys that verify access tokens (JWK set)".to_owned(),
        ))
        .response(
            "200",
            ResponseBuilder::new()
                .description("A JWK set")
                .content("application/json", json(object()))
                .build(),
        );
    all.push((
        "/.well-known/jwks.json".to_owned(),
        vec![(HttpMethod::Get, api_errors(jwks, &[405, 500, 503]).build())],
    ));
    let openapi = OperationBuilder::new()
        .tag("meta")
        .operation_id(Some("openapi"))
        .summary(Some("This document".to_owned()))
        .response(
            "200",
            ResponseBuilder::new()
                .description("OpenAPI 3.1")
                .content("application/json", json(object()))
                .build(),
        );
    all.push((
        "/openapi.json".to_owned(),
        vec![(
            HttpMethod::Get,
            api_errors(openapi, &[405, 500, 503]).build(),
        )],
    ));
    all
}
