// The official SignalR client over TLS, in its own process: node:test's process cannot trust a
// certificate made at test time for fetch and ws, but a child started with NODE_EXTRA_CA_CERTS
// does, as a deployment that trusts its own CA would. Usage: node tls-client.mjs URL TRANSPORT
// STREAM. Connects to URL/hub (https, so wss for WebSockets), publishes one event, reads it
// back through a streaming Subscribe from 0, prints {"ok":true,"data":...} or {"ok":false,...}.

import * as signalR from '@microsoft/signalr';

const [url, transport, stream] = process.argv.slice(2);
const c = new signalR.HubConnectionBuilder()
  .withUrl(`${url}/hub`, { transport: signalR.HttpTransportType[transport] })
  .configureLogging(signalR.LogLevel.None)
  .build();
const timer = setTimeout(() => {
  console.log(JSON.stringify({ ok: false, error: 'timed out after 10 s' }));
  process.exit(1);
}, 10000);
try {
  await c.start();
  await c.invoke('Publish', stream, { type: 'tls', data: { via: transport } });
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
  await c.stop();
  console.log(JSON.stringify({ ok: true, data: item.data }));
  clearTimeout(timer);
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e) }));
  process.exit(1);
}
