//! The OpenAPI description of who may call what ([`super::auth`]).

use super::token::TOKEN_PATH;

/// Mark every write operation of the OpenAPI document: the bearer security
/// scheme and the 401, 403 and 429 answers of the guard. The token endpoint
/// needs no bearer token: it gets the 403 and 429 answers only.
pub fn document_writes(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "The token in the agent's --token-file (default /var/lib/scx_pilot/token), \
                     or a JWT from POST /api/v1/auth/token (RS256, Gthulhu's clients). \
                     Needed on every write unless the agent runs with --auth none, and on \
                     reads under /api/v1 with --auth-reads.",
                ))
                .build(),
        ),
    );
    let error = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build()
    };
    for (path, item) in doc.paths.paths.iter_mut() {
        let needs_bearer = path != TOKEN_PATH;
        for op in [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let r = &mut op.responses.responses;
            if needs_bearer {
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    Vec::<String>::new(),
                )]);
                r.insert(
                    "401".into(),
                    error("No, wrong or expired bearer token (WWW-Authenticate: Bearer); nothing is changed")
                        .into(),
                );
            }
            r.insert(
                "403".into(),
                error("The Host header is not the listen address or an --allowed-host name (DNS rebinding guard), \
                       or the Origin is another web page's that --cors-write-origin does not list").into(),
            );
            r.insert(
                "429".into(),
                error("Over the per-client write rate (--write-rate-limit); Retry-After says when to retry").into(),
            );
        }
    }
}
