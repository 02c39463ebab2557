// Repository for the deliveries tables: filled in by the service that owns it.
export {};
