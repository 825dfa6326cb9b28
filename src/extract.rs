//! Request extractors shared by many routes: API JSON bodies with Bursar's errors, the client address.
use std::net::{IpAddr, SocketAddr};

use axum::{
    Json,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request, rejection::JsonRejection},
    http::request::Parts,
};
use serde::de::DeserializeOwned;

use crate::error::AppError;

/// A JSON body; anything else is a 4xx in the API's error shape.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::UnsupportedMediaType(
                "Send JSON with Content-Type: application/json.".into(),
            )),
            Err(JsonRejection::JsonDataError(e)) => Err(AppError::Validation {
                message: format!(
                    "The JSON body does not have the expected fields: {}",
                    e.body_text()
                ),
                fields: Default::default(),
            }),
            Err(JsonRejection::JsonSyntaxError(_)) => {
                Err(AppError::BadRequest("The body is not valid JSON.".into()))
            }
            Err(JsonRejection::BytesRejection(e))
                if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(AppError::PayloadTooLarge)
            }
            Err(_) => Err(AppError::BadRequest("The body could not be read.".into())),
        }
    }
}

/// The address a request came from. Behind a load balancer on a private or
/// loopback address, the last `X-Forwarded-For` hop (the one the balancer
/// added) is the client; from anywhere else the header is ignored, since a
/// client could write anything there.
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub IpAddr);

fn is_trusted_proxy(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_private())
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([127, 0, 0, 1]));
        if !is_trusted_proxy(peer) {
            return Ok(ClientAddr(peer));
        }
        // Only the hop our balancer appended is trusted: the last one.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|hop| hop.trim().parse::<IpAddr>().ok());
        Ok(ClientAddr(forwarded.unwrap_or(peer)))
    }
}
