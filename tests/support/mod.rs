//! Helpers shared by the integration tests (`mod support;`): a real Dask cluster, an
//! HTTP and WebSocket client, a Bokeh protocol client and an in-process gateway.
#![allow(dead_code, unreachable_pub)]

pub mod bokeh;
pub mod bokeh_page;
pub mod dask;
pub mod gateway;
pub mod http;
pub mod process;
