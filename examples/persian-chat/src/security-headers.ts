// Security headers on every response, API errors included, set by helmet (a well-kept library
// that tracks what browsers honour) rather than by hand.
import helmet from 'helmet'

export function securityHeaders() {
  return helmet({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        // The page loads only its own files: no CDN, no inline script or style.
        defaultSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        styleSrc: ["'self'"],
        scriptSrc: ["'self'"],
        connectSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        // No other site may frame the page (clickjacking its send button).
        frameAncestors: ["'none'"],
        // Not upgrade-insecure-requests: the service is often reached over plain HTTP on a LAN,
        // where upgrading would break the page's own requests.
      },
    },
    referrerPolicy: { policy: 'no-referrer' },
    // HSTS belongs to whatever terminates TLS in front of the service; over plain HTTP it is
    // ignored anyway.
    strictTransportSecurity: false,
  })
}
