//! Clients written elsewhere, run against a live claimd: the JavaScript client of
//! `clients/js` in Node and in Chromium (`js_client`), panva's openid-client for Node
//! (`openid_client`), and the `demo` page built on the JavaScript client.

mod demo;
mod js_client;
mod openid_client;
