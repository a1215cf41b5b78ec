// The container's HEALTHCHECK: healthy while this node's GET /readyz answers 200 (store reachable and
// taking writes, clock within cluster.max_clock_skew), unhealthy on any other answer or none within
// 2.5 s. It asks the server on loopback at WRIT_PORT (default 8080), over HTTPS when WRIT_TLS_CERT_FILE
// is set; the server's certificate names its public host, not 127.0.0.1, so it is not checked here:
// nothing is sent but the path. Exit 0: healthy; 1: not.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';

const port = Number(process.env.WRIT_PORT || 8080);
const tls = Boolean(process.env.WRIT_TLS_CERT_FILE);
const request = tls ? httpsRequest : httpRequest;
const req = request(
  { host: '127.0.0.1', port, path: '/readyz', method: 'GET', timeout: 2500, rejectUnauthorized: false },
  (res) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      if (body.length < 4096) body += chunk;
    });
    res.on('end', () => {
      if (res.statusCode === 200) process.exit(0);
      console.error(`/readyz answered ${res.statusCode}: ${body.slice(0, 500)}`);
      process.exit(1);
    });
  },
);
req.on('timeout', () => req.destroy(new Error('no answer within 2.5 s')));
req.on('error', (err) => {
  console.error(`/readyz: ${err.message}`);
  process.exit(1);
});
req.end();
