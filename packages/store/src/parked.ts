// Repository for the parked tables: filled in by the service that owns it.
export {};
