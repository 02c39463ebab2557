// Repository for the archive tables: filled in by the service that owns it.
export {};
