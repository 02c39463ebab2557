import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Express, type Response } from 'express';

/** services/gateway/console: static/ (HTML, CSS) and dist/ (the compiled scripts), found from src/ and dist/ alike. */
const consoleRoot = fileURLToPath(new URL('../console/', import.meta.url));

/**
 * The console's policy: its own scripts and styles only, API calls to this origin only, nothing
 * inline, no frames. The page builds every element with DOM calls and sets text with
 * textContent (never innerHTML), so message content (subjects, previews) stays text even if the
 * policy were bypassed.
 */
export const consoleCsp = ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "img-src 'self'", "form-action 'self'", "frame-ancestors 'none'", "base-uri 'none'"].join('; ');

function secureHeaders(res: Response): void {
  res.setHeader('Content-Security-Policy', consoleCsp);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('X-Frame-Options', 'DENY');
  res.setHeader('Referrer-Policy', 'no-referrer');
  // The page is small and changes with each release: always revalidated.
  res.setHeader('Cache-Control', 'no-cache');
}

/**
 * The web console at /console/: a static page that signs in with an API key and calls /api/v1
 * with it, as any other client does (the key stays in the tab's sessionStorage and is sent as a
 * bearer token, so the browser never attaches a credential on its own and there is no session
 * to forge requests with). What a key may see and do is the API's business, not the page's.
 */
export function mountConsole(app: Express): void {
  // Exactly /console (express matches /console/ here too): relative URLs need the slash.
  app.get('/console', (req, res, next) => (req.originalUrl.split('?')[0] === '/console' ? res.redirect(301, '/console/') : next()));
  const options = { index: false as const, fallthrough: true, setHeaders: secureHeaders, dotfiles: 'ignore' as const };
  app.use('/console/js', express.static(join(consoleRoot, 'dist'), { ...options, extensions: false }));
  app.use('/console', express.static(join(consoleRoot, 'static'), { ...options, index: 'index.html' }));
}
