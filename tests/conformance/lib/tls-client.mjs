// The official SignalR client over TLS, in its own process: node:test's process cannot trust a
// certificate made at test time for fetch and ws, but a child started with NODE_EXTRA_CA_CERTS
// does, as a deployment that trusts its own CA would. Usage: node tls-client.mjs URL TRANSPORT
// STREAM [KILLS]. Connects to URL/hub (https, so wss for WebSockets), publishes one event, reads
// it back through a streaming Subscribe from 0, prints {"ok":true,"data":...} or
// {"ok":false,...}. With KILLS (WebSockets only): a stateful connection through a TCP proxy whose
// sockets are killed KILLS times, each followed by a Publish that must be answered through the
// resumed socket; the output adds how often the client saw a reconnect (none expected), whether
// the connection id stayed, and the versions those Publishes got.

import * as signalR from '@microsoft/signalr';
import { tcpProxy } from './hub.mjs';

const [url, transport, stream, killsArg] = process.argv.slice(2);
const kills = Number(killsArg ?? 0);
const proxy = kills ? await tcpProxy(Number(new URL(url).port)) : null;
const base = proxy ? `https://127.0.0.1:${proxy.port}` : url;
let b = new signalR.HubConnectionBuilder()
  .withUrl(`${base}/hub`, { transport: signalR.HttpTransportType[transport] })
  .configureLogging(signalR.LogLevel.None);
if (kills) b = b.withStatefulReconnect().withAutomaticReconnect([0, 200]);
const c = b.build();
let reconnecting = 0;
c.onreconnecting(() => reconnecting++);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: 'timed out after 15 s' }));
  process.exit(1);
}, 15000);
try {
  await c.start();
  await c.invoke('Publish', stream, { type: 'tls', data: { via: transport } });
  const id = c.connectionId;
  const versions = [];
  for (let k = 0; k < kills; k++) {
    proxy.killAll();
    versions.push((await c.invoke('Publish', `${stream}-side`, { type: 'during', data: k })).lastVersion);
  }
  const item = await new Promise((resolve, reject) => {
    const sub = c.stream('Subscribe', stream, 0).subscribe({
      next: (x) => {
        sub.dispose();
        resolve(x);
      },
      error: reject,
      complete: () => reject(new Error('completed without an item')),
    });
  });
  const sameId = c.connectionId === id;
  await c.stop();
  await proxy?.close();
  console.log(JSON.stringify({ ok: true, data: item.data, reconnecting, sameId, versions }));
  clearTimeout(timer);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e) }));
  process.exit(1);
}
