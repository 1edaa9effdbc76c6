namespace Nova.Workflow.Redis; internal static class Placeholder {}
