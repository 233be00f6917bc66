//! The integration tests' one harness (`mod support;`): the gateway in process or as
//! a child process and its configuration builder, JWTs, HTTP, WebSocket and raw TCP
//! clients, fake upstreams, a fake reana-server and Kubernetes API server, a real
//! Dask cluster and a Bokeh protocol client.
#![allow(dead_code, unreachable_pub)]

pub mod bokeh;
pub mod bokeh_page;
pub mod config;
pub mod dask;
pub mod fake_kube;
pub mod fake_reana;
pub mod fixture;
pub mod gateway;
pub mod http;
pub mod jwt;
pub mod pattern;
pub mod process;
pub mod raw;
pub mod streaming;
pub mod upstream;
pub mod wait;
pub mod ws;
