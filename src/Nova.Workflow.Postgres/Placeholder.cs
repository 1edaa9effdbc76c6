namespace Nova.Workflow.Postgres; internal static class Placeholder {}
