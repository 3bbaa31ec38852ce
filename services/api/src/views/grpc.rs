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
        let updates = V::watch(&self.0.views, &principal, request.get_ref())
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(Box::pin(updates.map(|update| {
            update.map_err(|error| Status::from(ApiError::from(error)))
        }))))
    }
}
