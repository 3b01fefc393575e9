"""Customer insights: the 360° features, segments, churn and repurchase models, experiments and the dashboard's numbers.

Reads the store's tables (orders, tickets, the conversation log, turn audits) through SQLAlchemy;
never imports the agent, the knowledge base or serving.
"""
