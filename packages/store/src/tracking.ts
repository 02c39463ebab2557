// Repository for the tracking tables: filled in by the service that owns it.
export {};
