// server.js simple-hl7|medplum PORT - an npm MLLP server that ACKs every
// message from memory and stores nothing, on 127.0.0.1:PORT, for
// tests/bench/bench.sh to drive with the same bin/hl7send as hl7qd: the
// difference between the two is the cost of durability (hl7qd fsyncs the
// message before its ACK).  Prints "ready" once listening.
'use strict';
const net = require('node:net');

const [kind, portArg] = process.argv.slice(2);
const port = Number(portArg);

// Both libraries listen on every interface; the benchmark stays on loopback.
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (p, ...rest) {
  const s = listen.call(this, p, '127.0.0.1', ...rest.filter((a) => typeof a === 'function'));
  s.once('listening', () => console.log('ready'));
  return s;
};

if (kind === 'simple-hl7') {
  const hl7 = require('simple-hl7');
  const server = hl7.tcp();
  server.use((req, res, next) => res.end()); // the library's own AA
  server.use((err, req, res, next) => {
    console.error(err.message);
    res.end();
  });
  server.start(port);
} else if (kind === 'medplum') {
  const { Hl7Server } = require('@medplum/hl7');
  const server = new Hl7Server((conn) => {
    conn.addEventListener('message', ({ message }) => conn.send(message.buildAck()));
  });
  server.start(port);
} else {
  console.error('usage: server.js simple-hl7|medplum PORT');
  process.exit(2);
}
