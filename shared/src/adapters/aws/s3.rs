use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use bytes::Bytes;

use super::describe;
use crate::adapters::embedded::check_sink_key;
use crate::domain::error::SinkError;
use crate::ports::RecordSink;

/// An S3 client; path-style addressing when an endpoint is overridden
/// (moto, LocalStack), virtual-hosted in AWS.
pub fn client(sdk: &SdkConfig) -> Client {
    let path_style = sdk.endpoint_url().is_some();
    Client::from_conf(aws_sdk_s3::config::Builder::from(sdk).force_path_style(path_style).build())
}

/// The record sink on S3.
#[derive(Clone)]
pub struct S3Sink {
    client: super::Lazy<Client>,
    bucket: String,
}

impl S3Sink {
    pub fn new(client: super::Lazy<Client>, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

fn unavailable<E: std::error::Error + 'static>(e: E) -> SinkError {
    SinkError::Unavailable(describe(&e))
}

#[async_trait]
impl RecordSink for S3Sink {
    async fn put(&self, key: &str, body: Bytes, content_type: &str) -> Result<(), SinkError> {
        check_sink_key(key)?;
        self.client
            .get()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, SinkError> {
        check_sink_key(key)?;
        match self.client.get().await.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => {
                let data = out.body.collect().await.map_err(|e| SinkError::Unavailable(e.to_string()))?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, SinkError> {
        check_sink_key(key)?;
        match self.client.get().await.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(out.content_length().map(|n| n.max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), SinkError> {
        check_sink_key(key)?;
        self.client.get().await.delete_object().bucket(&self.bucket).key(key).send().await.map_err(unavailable)?;
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<Option<Box<dyn tokio::io::AsyncRead + Send + Unpin>>, SinkError> {
        check_sink_key(key)?;
        match self.client.get().await.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(Box::new(Box::pin(out.body.into_async_read())))),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn presign_put(&self, key: &str, expires_in: std::time::Duration) -> Result<String, SinkError> {
        check_sink_key(key)?;
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| SinkError::Unavailable(e.to_string()))?;
        let request = self
            .client
            .get()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(unavailable)?;
        Ok(request.uri().to_owned())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, SinkError> {
        let mut keys = Vec::new();
        let mut pages =
            self.client.get().await.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(unavailable)?;
            keys.extend(page.contents.unwrap_or_default().into_iter().filter_map(|o| o.key));
        }
        keys.sort();
        Ok(keys)
    }
}

pub(crate) async fn create_bucket(client: &Client, bucket: &str) -> Result<(), String> {
    match client.create_bucket().bucket(bucket).send().await {
        Ok(_) => Ok(()),
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_bucket_already_owned_by_you() || se.is_bucket_already_exists()) =>
        {
            Ok(())
        }
        Err(e) => Err(describe(&e)),
    }
}
