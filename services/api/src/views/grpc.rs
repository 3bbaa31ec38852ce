//! `ViewService`: every view's unary read and server stream.

use futures_util::StreamExt;
use noroshi_identity::Scope;
use noroshi_projections::views::ViewQuery;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::state::GrpcContext;

#[derive(Debug)]
pub(crate) struct Views(pub(crate) GrpcContext);

/// A view's updates as a gRPC server stream.
pub(crate) type Updates<T> =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

impl Views {
    pub(crate) async fn get<V: ViewQuery>(
        &self,
        request: Request<V::Request>,
    ) -> Result<Response<V::Response>, Status> {
        let principal = crate::auth::principal(&request, Scope::Views)?;
        if let Some(as_of) = V::as_of(request.get_ref()) {
            let (view, moment) = self
                .0
                .views
                .get_as_of::<V>(&principal, request.get_ref(), as_of)
                .await
                .map_err(ApiError::from)?;
            let mut response = Response::new(view);
            let metadata = response.metadata_mut();
            metadata.insert(super::http::AS_OF_POSITION, moment.position.into());
            if let Ok(time) = moment.time_text().map_err(ApiError::internal)?.parse() {
                metadata.insert(super::http::AS_OF_TIME, time);
            }
            return Ok(response);
        }
        let view = V::get(&self.0.views, &principal, request.get_ref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(view))
    }

    pub(crate) async fn watch<V: ViewQuery>(
        &self,
        request: Request<V::Request>,
    ) -> Result<Response<Updates<V::Update>>, Status> {
        let principal = crate::auth::principal(&request, Scope::Views)?;
        if V::as_of(request.get_ref()).is_some() {
            return Err(ApiError::Invalid(noroshi_domain::Violations::one(
                "as_of",
                "a live stream follows the present; read the past with the unary read",
            ))
            .into());
        }
        let updates = V::watch(&self.0.views, &principal, request.get_ref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(Box::pin(updates.map(|update| {
            update.map_err(|error| Status::from(ApiError::from(error)))
        }))))
    }
}
