using System.Text.RegularExpressions;
using Microsoft.Extensions.Options;

namespace Nova.Workflow.Postgres;

/// <summary>Settings of the PostgreSQL provider.</summary>
public sealed partial class PostgresProviderOptions
{
    /// <summary>The schema that holds the tables. Default <c>nova</c>; a lower-case SQL identifier.</summary>
    public string Schema { get; set; } = "nova";

    /// <summary>
    /// Create and upgrade the tables at start (under an advisory lock). Default true. Set false when a DBA
    /// applies <see cref="PostgresMigrations.Script"/> by hand.
    /// </summary>
    public bool RunMigrations { get; set; } = true;

    [GeneratedRegex("^[a-z_][a-z0-9_]{0,62}$")]
    internal static partial Regex Identifier();
}

internal sealed class PostgresProviderOptionsValidator : IValidateOptions<PostgresProviderOptions>
{
    public ValidateOptionsResult Validate(string? name, PostgresProviderOptions options) =>
        PostgresProviderOptions.Identifier().IsMatch(options.Schema ?? string.Empty)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"Postgres Schema '{options.Schema}' must be a lower-case identifier (letters, digits, '_', at most 63 characters).");
}
