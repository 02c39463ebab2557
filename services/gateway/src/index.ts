export { configSchema, type Config } from './config.js';
export { start, type GatewayService } from './service.js';
export { createApp, apiRoutes, type AppDeps } from './app.js';
export { createRepositories, type GatewayRepositories } from './repositories.js';
export { buildOpenApiDocument } from './openapi.js';
